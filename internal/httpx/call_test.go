package httpx

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type reply struct {
	status int
	header map[string]string
	body   string
	hang   bool
}

// scripted answers each request with the next reply; the last repeats.
func scripted(t *testing.T, replies ...reply) (*httptest.Server, func() int) {
	t.Helper()
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		rep := replies[min(n, len(replies)-1)]
		n++
		mu.Unlock()
		if rep.hang {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		for k, v := range rep.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(rep.status)
		_, _ = io.WriteString(w, rep.body)
	}))
	t.Cleanup(srv.Close)
	return srv, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

func TestCall(t *testing.T) {
	const key = "sk-secret-key-123456789"
	tests := []struct {
		name         string
		replies      []reply
		retries      int
		timeout      time.Duration
		wantErr      string // "" means success
		wantRequests int
		wantOutcomes []string
	}{
		{name: "2xx", replies: []reply{{status: 200, body: "fine"}}, wantRequests: 1},
		{
			name:    "429 then 200",
			replies: []reply{{status: 429, header: map[string]string{"Retry-After": "1"}}, {status: 200}},
			retries: 1, wantRequests: 2, wantOutcomes: []string{"rate_limited"},
		},
		{
			name:    "5xx until retries run out",
			replies: []reply{{status: 500, body: `{"error":{"message":"The server had an error","type":"server_error"}}`}},
			retries: 2, wantRequests: 3,
			wantErr:      "vendor op: HTTP 500 after 3 attempts: server_error: The server had an error",
			wantOutcomes: []string{"server_error", "server_error", "server_error"},
		},
		{
			name:    "401 is final and scrubbed",
			replies: []reply{{status: 401, body: `{"error":{"message":"Incorrect API key provided: ` + key + `.","code":"invalid_api_key"}}`}},
			retries: 3, wantRequests: 1,
			wantErr:      "vendor op: HTTP 401: invalid_api_key: Incorrect API key provided: [redacted].",
			wantOutcomes: []string{"client_error"},
		},
		{
			name:    "408 is retried",
			replies: []reply{{status: 408}, {status: 204}},
			retries: 1, wantRequests: 2, wantOutcomes: []string{"server_error"},
		},
		{
			name:    "timeout per attempt",
			replies: []reply{{hang: true}},
			retries: 1, timeout: 50 * time.Millisecond, wantRequests: 2,
			wantErr:      "vendor op: no answer within 50ms (after 2 attempts)",
			wantOutcomes: []string{"transport_error", "transport_error"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, requests := scripted(t, tt.replies...)
			var outcomes []string
			c := &Call{
				Vendor: "vendor", Operation: "op",
				Policy:  Policy{Retries: tt.retries, Base: time.Millisecond, Max: time.Millisecond, MaxRetryAfter: time.Millisecond},
				Timeout: tt.timeout,
				Secrets: []string{key},
				Record:  func(o string) { outcomes = append(outcomes, o) },
				NewRequest: func(ctx context.Context) (*http.Request, error) {
					return http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1?key="+key, strings.NewReader("{}"))
				},
			}
			_, err := c.Do(context.Background(), srv.Client())
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), key) {
				t.Errorf("error %q quotes the key", err)
			}
			if n := requests(); n != tt.wantRequests {
				t.Errorf("requests = %d, want %d", n, tt.wantRequests)
			}
			if strings.Join(outcomes, ",") != strings.Join(tt.wantOutcomes, ",") {
				t.Errorf("outcomes = %v, want %v", outcomes, tt.wantOutcomes)
			}
		})
	}
}

func TestVendorMessage(t *testing.T) {
	tests := []struct {
		body    string
		secrets []string
		want    string
	}{
		{`{"error":{"message":"bad key sk-abcdef123456 here","code":"invalid_api_key"}}`, nil, "invalid_api_key: bad key [redacted] here"},
		{`{"error":{"message":"token TOKEN1 is wrong"}}`, []string{"TOKEN1"}, "token [redacted] is wrong"},
		{`{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials.","request_id":"x"}`, nil, "INVALID_AUTH: Invalid credentials."},
		{`{"ok":false,"error":"channel_not_found"}`, nil, "channel_not_found"},
		{`{"success":false,"error":"Error","message":"parties is required"}`, nil, "Error: parties is required"},
		{"no_service\n", nil, "no_service"},
		{strings.Repeat("x", 500), nil, strings.Repeat("x", 200) + "…"},
	}
	for _, tt := range tests {
		if got := VendorMessage([]byte(tt.body), tt.secrets); got != tt.want {
			t.Errorf("VendorMessage(%q) = %q, want %q", tt.body, got, tt.want)
		}
	}
}

func TestPostSend(t *testing.T) {
	tests := []struct {
		name          string
		reply         reply
		wantErr       string
		wantRetryable bool
	}{
		{name: "2xx", reply: reply{status: 202}},
		{name: "4xx is final", reply: reply{status: 403}, wantErr: "answered 403 Forbidden"},
		{name: "429 is retryable", reply: reply{status: 429}, wantErr: "answered 429 Too Many Requests", wantRetryable: true},
		{name: "5xx is retryable", reply: reply{status: 503}, wantErr: "answered 503 Service Unavailable", wantRetryable: true},
		{name: "timeout is retryable", reply: reply{hang: true}, wantErr: "no answer within 50ms", wantRetryable: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got http.Header
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				got = r.Header.Clone()
				if tt.reply.hang {
					select {
					case <-r.Context().Done():
					case <-time.After(5 * time.Second):
					}
					return
				}
				w.WriteHeader(tt.reply.status)
				_, _ = io.WriteString(w, `{"echo":"vcon content"}`)
			}))
			defer srv.Close()
			target, err := ParseTarget(srv.URL + "/hook?token=query-secret")
			if err != nil {
				t.Fatal(err)
			}
			p := Post{Client: srv.Client(), Headers: map[string]string{"Authorization": "Bearer t", "Content-Type": "text/plain"}, Timeout: 50 * time.Millisecond}
			err = p.Send(context.Background(), target, "u1", []byte(`{"uuid":"u1"}`))
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if err != nil {
				if IsRetryable(err) != tt.wantRetryable {
					t.Errorf("IsRetryable(%v) = %v, want %v", err, !tt.wantRetryable, tt.wantRetryable)
				}
				for _, leak := range []string{"query-secret", "vcon content"} {
					if strings.Contains(err.Error(), leak) {
						t.Errorf("error %q quotes %q", err, leak)
					}
				}
				if !strings.Contains(err.Error(), target.Host) {
					t.Errorf("error %q does not name the host", err)
				}
			}
			if got.Get("Authorization") != "Bearer t" || got.Get("Content-Type") != "application/json" || got.Get(UUIDHeader) != "u1" {
				t.Errorf("headers = %v", got)
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://hooks.example/x?token=1": true, "http://localhost:8080": true,
		"ftp://x": false, "/relative": false, "http://": false, "::": false,
	} {
		tg, err := ParseTarget(raw)
		if (err == nil) != ok {
			t.Errorf("ParseTarget(%q) = %+v, %v; want ok=%v", raw, tg, err, ok)
		}
	}
}
