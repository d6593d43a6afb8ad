package orchestration_test

import (
	"testing"

	"github.com/durableactor/durable/orchestration"
)

func TestEventKindClasses(t *testing.T) {
	outcomes := map[orchestration.EventKind]bool{
		orchestration.TaskCompleted:                     true,
		orchestration.TaskFailed:                        true,
		orchestration.SubOrchestrationInstanceCompleted: true,
		orchestration.SubOrchestrationInstanceFailed:    true,
		orchestration.TimerFired:                        true,
		orchestration.EntityOperationCompleted:          true,
		orchestration.EntityOperationFailed:             true,
		orchestration.EntityLockGranted:                 true,
	}
	for k := orchestration.ExecutionStarted; k <= orchestration.EntityUnlockSent; k++ {
		if k.IsOutcome() != outcomes[k] {
			t.Errorf("%s.IsOutcome() = %v", k, k.IsOutcome())
		}
		if k.IsOutcome() && k.IsDecision() {
			t.Errorf("%s is both an outcome and a decision", k)
		}
	}
}
