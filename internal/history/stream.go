package history

// StreamPrefix is the category of orchestration instance streams: the
// stream of an instance holds its history, one record per episode.
const StreamPrefix = "orchestration-"

// StreamName returns the stream of an instance.
func StreamName(instanceID string) string { return StreamPrefix + instanceID }
