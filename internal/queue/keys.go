// Package queue is the at-least-once Redis queue layout shared by the worker
// (which takes and finishes work) and the operator (which measures it and
// returns work orphaned by dead workers).
//
// Producers and consumers outside this project see conserver's layout
// unchanged: an ingress list of bare uuids (RPUSH in, taken from the left),
// egress lists, and DLQ:{ingress}. What conserver lacks is a record of work
// in progress: its BLPOP removes a uuid, and a crash loses it. Here a taken
// uuid is moved atomically (BLMOVE) into an in-flight list owned by one
// worker process, and leaves it only when the vCon is finished. Each worker
// registers itself, per ingress list, in a sorted set scored by the time its
// heartbeat expires; any live worker and the operator move the in-flight
// items of expired workers back to the head of the ingress list, exactly
// once, in a Lua script.
//
// Key layout (every key but the ingress, egress and DLQ lists is ours):
//
//	{ingress}                                   list, conserver's, bare uuids
//	DLQ:{ingress}                               list, conserver's, bare uuids
//	DLQ:storage:{storage}                       list, conserver's, bare uuids whose write to {storage} failed
//	vcon-operator:workers:{T}:{ingress}         zset worker id -> heartbeat expiry (ms, Redis clock)
//	vcon-operator:inflight:{T}:{ingress}:{id}   list, uuids worker {id} took from {ingress}
//	vcon-operator:dlq-reasons:{T}:{ingress}     hash uuid -> JSON DLQReason
//	vcon-operator:follower-pending:{name}       list, uuids follower {name} popped upstream, not yet queued here
//	vcon-operator:follower-attempts:{name}      hash uuid -> polls in a row upstream failed to give it
//	vcon-operator:follower-lease:{name}         string, id of the worker that polls for follower {name}
//
// {T} is the ingress list's Redis Cluster hash tag: the list name itself, or
// the tag the name already carries. Every key an atomic move touches thus
// lives in the ingress list's slot, so at-least-once holds on a cluster too.
package queue

import (
	"fmt"
	"strings"
)

const keyPrefix = "vcon-operator:"

// DLQKey is conserver's dead-letter list for an ingress list.
func DLQKey(ingress string) string { return "DLQ:" + ingress }

// slotTag is the part of key Redis Cluster hashes: the content of the first
// {...} when it is non-empty, else the whole key.
func slotTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// tagged builds one of our keys for an ingress list, in that list's slot.
func tagged(kind, ingress string) string {
	return keyPrefix + kind + ":{" + slotTag(ingress) + "}:" + ingress
}

// WorkersKey is the sorted set of worker processes registered on an ingress
// list, scored by the Redis time (ms) at which their heartbeat expires.
func WorkersKey(ingress string) string { return tagged("workers", ingress) }

// InFlightPrefix is the in-flight list key of a worker on an ingress list,
// without the worker id. Scripts append the ids they read from WorkersKey.
func InFlightPrefix(ingress string) string { return tagged("inflight", ingress) + ":" }

// InFlightKey is the list of uuids a worker took from an ingress list and
// has not finished. The operator counts IN-FLIGHT from these lists.
func InFlightKey(ingress, workerID string) string { return InFlightPrefix(ingress) + workerID }

// StorageDLQList names the list whose DLQ (DLQKey) is conserver's
// dead-letter list of one storage, DLQ:storage:{name}: the uuids whose
// write to that storage failed while their vCon went on. It is no queue
// anyone consumes; naming it so lets the storage DLQ share the DLQ's
// reasons hash (DLQReasonsKey(StorageDLQList(name))) and readers
// (ListDLQ). An ingress list named storage:{name} would share the key;
// do not name one so.
func StorageDLQList(storage string) string { return "storage:" + storage }

// StorageDLQKey is conserver's dead-letter list of a storage,
// DLQ:storage:{name} (its storage's name in the config, not its module).
func StorageDLQKey(storage string) string { return DLQKey(StorageDLQList(storage)) }

// StorageReplayLockKey is conserver's lock of a storage DLQ's replay: one
// replay at a time per storage, across API processes (and conserver's own
// API sharing the Redis).
func StorageReplayLockKey(storage string) string { return StorageDLQKey(storage) + ":replay-lock" }

// DLQReasonsKey is the hash uuid -> JSON DLQReason for an ingress list's DLQ.
// The DLQ list itself stays bare uuids for conserver's tools.
func DLQReasonsKey(ingress string) string { return tagged("dlq-reasons", ingress) }

// StateKey is the hash of what the queue remembers of each uuid of an
// ingress list between its deliveries: "d:<uuid>" counts the deliveries
// that ended without an outcome (a reaper returned them), "a:<uuid>" holds
// the failed attempts of a vCon waiting for a delayed retry, and
// "r:<uuid>" the links a vCon has completed, where a retry or a replay
// resumes. Fields exist only for vCons that need them.
func StateKey(ingress string) string { return tagged("vcon-state", ingress) }

// RetryKey is the sorted set of uuids of an ingress list waiting for a
// delayed retry, scored by the Redis time (ms) at which they are due.
func RetryKey(ingress string) string { return tagged("retry", ingress) }

// AgeKey is the sorted set of age markers of an ingress list: uuids seen
// at its tail, scored by the Redis time (ms) they were first seen there
// (see oldestLua).
func AgeKey(ingress string) string { return tagged("age", ingress) }

// FollowerPendingKey is the list of uuids a follower (internal/follower)
// popped from its upstream egress list and has not yet queued here. The
// upstream pop is destructive: this list is the only record of them until
// they are queued or dead-lettered.
func FollowerPendingKey(name string) string { return keyPrefix + "follower-pending:" + name }

// FollowerAttemptsKey is the hash uuid -> polls in a row in which
// upstream failed to give a pending vCon of a follower.
func FollowerAttemptsKey(name string) string { return keyPrefix + "follower-attempts:" + name }

// FollowerLeaseKey holds the id of the one worker that polls upstream for
// a follower, so that replicas running the same config do not multiply
// the polls.
func FollowerLeaseKey(name string) string { return keyPrefix + "follower-lease:" + name }

// ContextKey is conserver's trace-context list for a uuid queued on a list.
func ContextKey(list, uuid string) string { return "context:" + list + ":" + uuid }

// ValidSlotLayout reports whether our keys for ingress share its cluster
// slot. It fails for names whose hashed part holds a '}', which no hash
// tag can carry: a '}' before any '{...}' tag ("a}b") or an empty first tag
// ("x{}y", hashed whole). ListNameConflict refuses such names, so the
// worker's atomic moves never cross a slot.
func ValidSlotLayout(ingress string) bool {
	return slotTag(WorkersKey(ingress)) == slotTag(ingress)
}

// IndexSortedSet is conserver's sorted set of stored vCon uuids (the API's
// default index).
const IndexSortedSet = "vcons"

// ReservedPrefixes begin keys of the Redis data model that are not queues:
// vCon bodies, trace contexts, the API's party indexes and our own keys.
var ReservedPrefixes = []string{"vcon:", "context:", "tel:", "mailto:", "name:", keyPrefix}

// ListNameConflict says why a queue named name would share its key with
// data of another type (a push onto it fails with WRONGTYPE), or "" when
// it would not. The API, the config loader and the CRDs refuse such names.
func ListNameConflict(name string) string {
	if name == IndexSortedSet {
		return fmt.Sprintf("%q is the vCon index (a sorted set), not a queue", name)
	}
	for _, p := range ReservedPrefixes {
		if strings.HasPrefix(name, p) {
			return fmt.Sprintf("keys starting with %q hold vCon data, not queues", p)
		}
	}
	if !ValidSlotLayout(name) {
		// Refused on a single server too: the same config must run on a
		// Redis Cluster, and such a name is a typo far more often than a
		// choice.
		return "its Redis Cluster hash slot cannot be shared by the worker's keys (a '}' outside a {tag}, or an empty {} tag)"
	}
	return ""
}
