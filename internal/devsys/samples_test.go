package devsys

import (
	"net"
	"net/http"
	"strings"
	"testing"
)

// An outage (SetStatus) refuses posts without counting them as
// deliveries; once it ends, posts are delivered and counted again.
func TestWebhookSinkOutage(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink := serveWebhookSink(l)
	defer sink.Close()
	post := func(uuid string) int {
		t.Helper()
		resp, err := http.Post(sink.URL, "application/json", strings.NewReader(`{"uuid":"`+uuid+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	steps := []struct {
		status     int
		uuid       string
		wantAnswer int
	}{
		{0, "a", http.StatusNoContent},
		{http.StatusServiceUnavailable, "a", http.StatusServiceUnavailable},
		{http.StatusServiceUnavailable, "b", http.StatusServiceUnavailable},
		{0, "b", http.StatusNoContent},
	}
	for i, s := range steps {
		sink.SetStatus(s.status)
		if got := post(s.uuid); got != s.wantAnswer {
			t.Errorf("step %d: post %s answered %d, want %d", i, s.uuid, got, s.wantAnswer)
		}
	}
	if d := sink.Deliveries(); d["a"] != 1 || d["b"] != 1 || len(d) != 2 {
		t.Errorf("deliveries %v, want a and b once each (refused posts are not deliveries)", d)
	}
	if r, n := sink.Refused.Load(), sink.Received.Load(); r != 2 || n != 4 {
		t.Errorf("refused %d of %d received, want 2 of 4", r, n)
	}
}
