package auditlog

// SetSegmentBytes makes j start a new segment after n bytes.
func SetSegmentBytes(j *Journal, n int64) { j.segBytes = n }
