package httpx

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestForbiddenAddr(t *testing.T) {
	tests := []struct {
		addr    string
		refused bool
	}{
		{"127.0.0.1", true}, {"10.1.2.3", true}, {"172.16.0.1", true}, {"192.168.1.1", true},
		{"169.254.169.254", true}, {"100.64.0.1", true}, {"0.0.0.0", true}, {"::1", true},
		{"fd00::1", true}, {"fe80::1", true}, {"::ffff:127.0.0.1", true}, {"224.0.0.1", true},
		{"8.8.8.8", false}, {"2606:4700:4700::1111", false}, {"100.128.0.1", false},
	}
	for _, tt := range tests {
		err := ForbiddenAddr(netip.MustParseAddr(tt.addr))
		if (err != nil) != tt.refused {
			t.Errorf("%s: err = %v, want refused=%v", tt.addr, err, tt.refused)
		}
	}
}

func TestGuardedClientRefusesLoopback(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("the guarded client reached a loopback server")
	}))
	defer srv.Close()
	resp, err := GuardedClient(nil).Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("GET of a loopback URL succeeded")
	}
	if !strings.Contains(err.Error(), "refusing to download from internal address 127.0.0.1") {
		t.Errorf("err = %v, want it to name the refused address", err)
	}
}
