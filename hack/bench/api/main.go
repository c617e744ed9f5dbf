// Command api measures POST /api/vcon against a bare net/http handler that
// sends the same Redis commands, in the same run on the same redis-server,
// so the ratio shows what the API's own work costs. It prints a Markdown
// section for docs/benchmarks.md (hack/bench.sh runs it).
//
//	go run ./hack/bench/api/
//
// BENCH_SECONDS (default 5) sets the length of each of the four rounds
// (api, bare, api, bare); BENCH_CLIENTS (default 32) the concurrency.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/hack/bench/benchutil"
	"github.com/vcon-operator/vcon-operator/internal/api"
	"github.com/vcon-operator/vcon-operator/internal/apiwire"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

const token = "bench-token"

// vconTemplate is a 5 KB vCon; %s is the uuid.
var vconTemplate = func() string {
	text := strings.Repeat("Customer asked about the invoice and the agent explained the charges. ", 65)
	return `{"vcon":"0.0.1","uuid":"%s","created_at":"2024-01-15T10:30:00.000Z","subject":"billing call",` +
		`"parties":[{"tel":"+15551234567","name":"Alice Example"},{"mailto":"agent@example.com","name":"Agent Bob"}],` +
		`"dialog":[{"type":"text","start":"2024-01-15T10:30:00Z","parties":[0,1],"mediatype":"text/plain","duration":185.5,"body":"` + text + `"}],` +
		`"analysis":[{"type":"summary","dialog":0,"vendor":"bench","body":"invoice question","encoding":"none"}],"attachments":[]}`
}()

func uuidFor(n uint64) string {
	s := fmt.Sprintf("%032x", n)
	return s[0:8] + "-" + s[8:12] + "-4" + s[13:16] + "-8" + s[17:20] + "-" + s[20:32]
}

// bareHandler does the minimum any handler must (read the body, find the
// fields the Redis commands need) and the same commands in one MULTI.
func bareHandler(rdb *redis.Client) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(400)
			return
		}
		var doc struct {
			UUID      string    `json:"uuid"`
			CreatedAt time.Time `json:"created_at"`
			Parties   []struct {
				Tel, Mailto, Name string
			} `json:"parties"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			w.WriteHeader(422)
			return
		}
		ctx := r.Context()
		pipe := rdb.TxPipeline()
		pipe.Set(ctx, "vcon:"+doc.UUID, body, apiwire.DefaultVconTTL)
		pipe.ZAdd(ctx, "vcons", redis.Z{Score: float64(doc.CreatedAt.Unix()), Member: "vcon:" + doc.UUID})
		for _, p := range doc.Parties {
			for _, k := range []string{"tel:" + p.Tel, "mailto:" + p.Mailto, "name:" + p.Name} {
				if !strings.HasSuffix(k, ":") {
					pipe.SAdd(ctx, k, doc.UUID)
					pipe.Expire(ctx, k, api.DefaultIndexTTL)
				}
			}
		}
		for _, l := range r.URL.Query()["ingress_lists"] {
			pipe.RPush(ctx, l, doc.UUID)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			w.WriteHeader(500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		_, _ = w.Write(body)
	})
}

type result struct {
	requests int
	errors   int
	elapsed  time.Duration
	lat      []time.Duration
}

func (r result) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }
func (r result) quantile(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	slices.Sort(r.lat)
	return r.lat[min(len(r.lat)-1, int(q*float64(len(r.lat))))]
}

var counter atomic.Uint64

func load(url string, clients int, d time.Duration) result {
	tr := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var mu sync.Mutex
	var res result
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			errs := 0
			for time.Now().Before(deadline) {
				body := fmt.Sprintf(vconTemplate, uuidFor(counter.Add(1)))
				req, _ := http.NewRequest("POST", url+"/api/vcon?ingress_lists=default", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(apiwire.DefaultHeaderName, token)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				lat = append(lat, time.Since(t0))
				if err != nil || resp.StatusCode != 201 {
					errs++
				}
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.errors += errs
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.requests = len(res.lat)
	return res
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench api:", err)
		os.Exit(1)
	}
}

// startRedis runs a private redis-server on a free port until stop.
func startRedis() (addr string, stop func(), err error) {
	r, err := testenv.RunRedis()
	if err != nil {
		return "", nil, err
	}
	return r.Addr, r.Stop, nil
}

func run() error {
	if n := len(fmt.Sprintf(vconTemplate, uuidFor(1))); n < 5000 || n > 5300 {
		return fmt.Errorf("vCon is %d bytes, want about 5 KB", n)
	}
	seconds := time.Duration(benchutil.EnvInt("BENCH_SECONDS", 5)) * time.Second
	clients := benchutil.EnvInt("BENCH_CLIENTS", 32)
	addr, stop, err := startRedis()
	if err != nil {
		return err
	}
	defer stop()
	rdb := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 64})
	defer rdb.Close()

	srv, err := api.New(rdb, api.Options{Tokens: []string{token}, VconTTL: apiwire.DefaultVconTTL, IndexTTL: api.DefaultIndexTTL, ContextTTL: queue.DefaultContextTTL})
	if err != nil {
		return err
	}
	apiSrv := httptest.NewServer(srv.Handler())
	defer apiSrv.Close()
	bareSrv := httptest.NewServer(bareHandler(rdb))
	defer bareSrv.Close()

	// Warm both up, then alternate rounds so drift hits both alike.
	load(apiSrv.URL, clients, time.Second)
	load(bareSrv.URL, clients, time.Second)
	var apiRes, bareRes result
	for range 2 {
		for _, side := range []struct {
			url string
			acc *result
		}{{apiSrv.URL, &apiRes}, {bareSrv.URL, &bareRes}} {
			rdb.FlushAll(context.Background())
			res := load(side.url, clients, seconds)
			side.acc.requests += res.requests
			side.acc.errors += res.errors
			side.acc.elapsed += res.elapsed
			side.acc.lat = append(side.acc.lat, res.lat...)
		}
	}
	if apiRes.errors > 0 || bareRes.errors > 0 {
		return fmt.Errorf("errors: api %d, bare %d", apiRes.errors, bareRes.errors)
	}
	ratio := apiRes.rps() / bareRes.rps()
	var out bytes.Buffer
	fmt.Fprintf(&out, "## api: POST /api/vcon\n\n")
	fmt.Fprintf(&out, "5 KB vCon, %d concurrent clients, 2 rounds of %s per side, alternating, one redis-server. "+
		"Baseline: a bare net/http handler sending the data commands of the API's write (one MULTI: SET, ZADD, SADD+EXPIRE per party value, RPUSH); the API's MULTI also carries its idempotent-enqueue script (in place of the RPUSH) and a write marker, which the baseline does not, so the ratio is a lower bound.\n\n", clients, seconds)
	fmt.Fprintf(&out, "| server | req/s | p50 | p99 | requests |\n|---|---:|---:|---:|---:|\n")
	for _, row := range []struct {
		name string
		r    result
	}{{"api", apiRes}, {"bare net/http", bareRes}} {
		fmt.Fprintf(&out, "| %s | %.0f | %s | %s | %d |\n", row.name, row.r.rps(),
			row.r.quantile(0.5).Round(10*time.Microsecond), row.r.quantile(0.99).Round(10*time.Microsecond), row.r.requests)
	}
	fmt.Fprintf(&out, "\nRatio api/bare: **%.1f%%** (target at least 70%%).\n", 100*ratio)
	_, err = os.Stdout.Write(out.Bytes())
	return err
}
