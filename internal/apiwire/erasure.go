package apiwire

// What an erasure did in one place (ErasurePlace.Status).
const (
	// Erased: a copy was there and is gone. A storage that cannot tell
	// whether it held one reports Erased when its delete succeeded.
	Erased = "erased"
	// Absent: there was no copy.
	Absent = "absent"
	// Failed: a copy may still be there; Reason says why. Repeating the
	// request is safe.
	Failed = "failed"
	// Unsupported: the storage cannot delete, or cannot search by party
	// (a webhook: what it received is beyond this system's reach).
	Unsupported = "unsupported"
	// Searched: a party erasure asked this place for the party's vCons.
	Searched = "searched"
)

// ErasurePlace is what an erasure did in one place: Redis, a storage, or
// for a party erasure a search.
type ErasurePlace struct {
	Name     string `json:"name"`
	Status   string `json:"status"`
	Reason   string `json:"reason,omitempty"`
	Attempts int    `json:"attempts,omitempty"`
	// Found is how many vCons a search found.
	Found int `json:"found,omitempty"`
}

// ErasureReport answers DELETE /api/vcon/{uuid} (as JSON when asked for,
// or when not everything could be erased) and is one entry of a party
// erasure's answer.
type ErasureReport struct {
	UUID string `json:"uuid"`
	// Complete is true when no place failed: no place that can delete
	// holds a copy now. Unsupported places do not make it false; they are
	// listed so that the caller can act on them.
	Complete bool `json:"complete"`
	// Redis is the body at vcon:{uuid}.
	Redis ErasurePlace `json:"redis"`
	// IndexesRemoved counts the listing and party index sets the uuid was
	// removed from; QueueEntriesRemoved the entries taken off the
	// configured chains' ingress, egress and DLQ lists.
	IndexesRemoved      int64 `json:"indexes_removed"`
	QueueEntriesRemoved int64 `json:"queue_entries_removed"`
	// Storages are the API's configured storages, in the file's order.
	Storages []ErasurePlace `json:"storages"`
}

// PartyErasure is the body of POST /api/vcons/erase: exactly one of Tel
// and Mailto.
type PartyErasure struct {
	Tel    string `json:"tel,omitempty"`
	Mailto string `json:"mailto,omitempty"`
}

// PartyErasureReport answers POST /api/vcons/erase.
type PartyErasureReport struct {
	// Complete is true when every search answered and every vCon found
	// was erased everywhere it can be.
	Complete bool `json:"complete"`
	// Searched are the places asked for the party's vCons: the Redis party
	// index, then each storage (Unsupported when it cannot search).
	Searched []ErasurePlace  `json:"searched"`
	VCons    []ErasureReport `json:"vcons"`
}
