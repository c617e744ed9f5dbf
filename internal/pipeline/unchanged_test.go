package pipeline

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// A chain that leaves the document as it read it writes no body back (as
// conserver's read-only chains); one that changes it, or a body that
// normalisation rewrites, is written as before. Counted by redis-server
// itself: commands a script runs are in its commandstats too.
func TestUnchangedBodyIsNotWritten(t *testing.T) {
	const in, out = "ingress", "egress"
	uuid := testUUID(1)
	canonical := encoded(t, document(uuid, 1200))
	tagged := encoded(t, document(uuid, 1200), func(v *vcon.VCon) { vcon.AddTag(v, "reviewed", "reviewed") })
	tests := []struct {
		name      string
		links     []mod
		body      []byte
		wantSets  int64
		wantStays bool // the stored body is still the one read
	}{
		{"no link, body in the worker's encoding", nil, canonical, 0, true},
		{"read-only link", []mod{{"route", "links.tag_router", map[string]any{"tag_routes": map[string]any{"reviewed": "reviewed-list"}}}}, canonical, 0, true},
		{"tag already there", []mod{{"tag", "links.tag", map[string]any{"tags": []any{"reviewed"}}}}, tagged, 0, true},
		{"tag added", []mod{{"tag", "links.tag", map[string]any{"tags": []any{"reviewed"}}}}, canonical, 1, false},
		{"legacy body, normalised on write", nil, document(uuid, 1200), 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			p, _, _ := e.processor(e.chain(t, "main", []string{in}, []string{out}, tt.links, nil), testOptions(), "w1")
			e.putBody(t, uuid, tt.body, time.Hour)
			if err := e.rdb.RPush(ctx, in, uuid).Err(); err != nil {
				t.Fatal(err)
			}
			it := e.take(t, p, in)
			if err := e.rdb.ConfigResetStat(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			if err := p.Process(ctx, it); err != nil {
				t.Fatalf("Process: %v", err)
			}
			if got := commandCalls(t, e, "set"); got != tt.wantSets {
				t.Errorf("SET calls = %d, want %d", got, tt.wantSets)
			}
			if got := e.list(t, out); len(got) != 1 || got[0] != uuid {
				t.Fatalf("egress = %v, want the vCon", got)
			}
			stored, err := e.rdb.Get(ctx, vconstore.Key(uuid)).Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(stored, tt.body) != tt.wantStays {
				t.Errorf("stored body equal to the one read: %v, want %v", !tt.wantStays, tt.wantStays)
			}
			// Unwritten or written, the body keeps a TTL (its own or the
			// queued retention's), never none.
			if ttl := e.rdb.PTTL(ctx, vconstore.Key(uuid)).Val(); ttl <= 0 {
				t.Errorf("body TTL = %v after the chain, want one", ttl)
			}
		})
	}
}

// encoded is doc as the worker writes it, after edit.
func encoded(t *testing.T, doc []byte, edit ...func(*vcon.VCon)) []byte {
	t.Helper()
	v, err := vcon.Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range edit {
		f(v)
	}
	vcon.Normalize(v)
	b, err := v.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// commandCalls is redis-server's count of calls of one command since the
// last CONFIG RESETSTAT.
func commandCalls(t *testing.T, e *env, name string) int64 {
	t.Helper()
	info, err := e.rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+name+":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
		return n
	}
	return 0
}
