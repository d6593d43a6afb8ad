package history

// StreamPrefix is the category of orchestration instance streams: the
// stream of an instance holds its history, one record per episode.
const StreamPrefix = "orchestration-"

// StreamName returns the stream of an instance.
func StreamName(instanceID string) string { return StreamPrefix + instanceID }

// PurgedType is the event-store type of the record a purge appends to an
// instance's stream before it truncates everything older: the instance is
// gone, and readers (the grain, the index) forget what came before it. The
// record stays, so every reader of the global log learns of the purge,
// also one that reads it later, and the next start of the same ID
// continues the stream's revisions.
const PurgedType = "Purged"
