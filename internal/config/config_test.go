package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var testValidator = Validator{
	Links:    []string{"links.analyze", "links.jq_link", "links.tag", "links.webhook"},
	Storages: []string{"storage.file", "storage.postgres"},
}

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

const realistic = `
links:
  tag:
    module: links.tag
    options:
      tags: [inbound, "priority:high"]
  only_sales:
    module: links.jq_link
    options:
      filter: '.attachments | map(select(.purpose == "tags")) | length > 0'
      forward_matches: true
  notify:
    module: links.webhook
    options:
      webhook-urls:
        - https://hooks.example.com/vcon
      headers:
        Content-Type: application/json
  summarize:
    module: links.analyze
    options:
      OPENAI_API_KEY: ${OPENAI_API_KEY}
      model: gpt-4o-mini
      temperature: 0.2
      sampling_rate: 1
      source:
        analysis_type: transcript
        text_location: body.paragraphs.transcript
    limits:
      requests_per_minute: 600
      tokens_per_minute: 90000
      max_concurrent: 20
storages:
  postgres:
    module: storage.postgres
    options:
      host: db.example.com
      port: 5432
      user: vcon
      password: ${PG_PASSWORD:-secret}
      database: conserver
  file:
    module: storage.file
    options:
      path: /data/vcons
      organize_by_date: yes
      file_permissions: 0644
  archive:
    module: storage.file
chains:
  main:
    links:
      - tag
      - only_sales
      - summarize
      - notify
    storages: [postgres, file]
    ingress_lists: [default]
    egress_lists: [processed]
    enabled: 1
    timeout: 120
  archive_only:
    links: []
    storages: [archive]
    ingress_lists: [archive]
    enabled: false
ingress_auth:
  default: key-one
  archive: [key-two, key-three]
imports:
  tagging: {module: links.tag, pip_name: vcon-tag}
  legacy: storage.file
tracers:
followers:
  upstream:
    url: https://other.example.com/api
    egress_list: out
    follower_ingress_list: default
    auth_token: upstream-token
    pulling_interval: 10
    fetch_vcon_limit: 5
  fanout:
    url: http://10.0.0.7:8000
    egress_list: done
    follower_ingress_list: [default, archive]
    pulling_interval: 2.5
    fetch_vcon_limit: 1
`

func realisticWant() *Config {
	return &Config{
		Links: map[string]Module{
			"tag": {Module: "links.tag", Options: map[string]any{"tags": []any{"inbound", "priority:high"}}},
			"only_sales": {Module: "links.jq_link", Options: map[string]any{
				"filter":          `.attachments | map(select(.purpose == "tags")) | length > 0`,
				"forward_matches": true,
			}},
			"notify": {Module: "links.webhook", Options: map[string]any{
				"webhook-urls": []any{"https://hooks.example.com/vcon"},
				"headers":      map[string]any{"Content-Type": "application/json"},
			}},
			"summarize": {Module: "links.analyze", Options: map[string]any{
				"OPENAI_API_KEY": "sk-test",
				"model":          "gpt-4o-mini",
				"temperature":    0.2,
				"sampling_rate":  int64(1),
				"source": map[string]any{
					"analysis_type": "transcript",
					"text_location": "body.paragraphs.transcript",
				},
			}, Limits: &Limits{RequestsPerMinute: 600, TokensPerMinute: 90000, MaxConcurrent: 20}},
		},
		Storages: map[string]Module{
			"postgres": {Module: "storage.postgres", Options: map[string]any{
				"host": "db.example.com", "port": int64(5432), "user": "vcon",
				"password": "secret", "database": "conserver",
			}},
			"file": {Module: "storage.file", Options: map[string]any{
				"path": "/data/vcons", "organize_by_date": true, "file_permissions": int64(0o644),
			}},
			"archive": {Module: "storage.file"},
		},
		StorageOrder: []string{"postgres", "file", "archive"},
		Chains: map[string]Chain{
			"main": {
				Links:        []string{"tag", "only_sales", "summarize", "notify"},
				Storages:     []string{"postgres", "file"},
				IngressLists: []string{"default"},
				EgressLists:  []string{"processed"},
				Enabled:      true,
				Timeout:      120 * time.Second,
				HasLinksKey:  true,
			},
			"archive_only": {
				Storages:     []string{"archive"},
				IngressLists: []string{"archive"},
				HasLinksKey:  true,
			},
		},
		IngressAuth: map[string][]string{"default": {"key-one"}, "archive": {"key-two", "key-three"}},
		Imports:     map[string]Import{"tagging": {Module: "links.tag", PipName: "vcon-tag"}, "legacy": {Module: "storage.file"}},
		Followers: map[string]Follower{
			"upstream": {URL: "https://other.example.com/api", EgressList: "out", IngressLists: []string{"default"},
				AuthToken: "upstream-token", PullingInterval: 10 * time.Second, FetchVconLimit: 5},
			"fanout": {URL: "http://10.0.0.7:8000", EgressList: "done", IngressLists: []string{"default", "archive"},
				PullingInterval: 2500 * time.Millisecond, FetchVconLimit: 1},
		},
	}
}

func TestParseRealisticConfig(t *testing.T) {
	got, err := Parse([]byte(realistic), envOf(map[string]string{"OPENAI_API_KEY": "sk-test"}))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if want := realisticWant(); !reflect.DeepEqual(got, want) {
		t.Errorf("Parse mismatch\n got: %#v\nwant: %#v", got, want)
	}
	if err := got.Validate(testValidator); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

// TestStorageOrder: the storages keep the order the file writes them in,
// through Parse and Marshal, since a missing body is read back from them
// in that order (conserver iterates its storages: mapping as written).
func TestStorageOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		want []string
	}{
		{"file order, not name order", "storages:\n  zeta: {module: storage.file}\n  alpha: {module: storage.file}\n  mid: {module: storage.file}\n", []string{"zeta", "alpha", "mid"}},
		{"flow mapping", "storages: {b: {module: storage.file}, a: {module: storage.file}}\n", []string{"b", "a"}},
		{"through an alias", "base: &s\n  y: {module: storage.file}\n  x: {module: storage.file}\nstorages: *s\n", []string{"y", "x"}},
		{"no storages", "chains: {}\n", []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.doc), nil)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := c.StorageNames(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("StorageNames() = %v, want %v", got, tc.want)
			}
			out, err := c.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			again, err := Parse(out, nil)
			if err != nil {
				t.Fatalf("Parse of Marshal output: %v\n%s", err, out)
			}
			if got := again.StorageNames(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("after Marshal, StorageNames() = %v, want %v\n%s", got, tc.want, out)
			}
		})
	}

	// A Config built in Go names its order, or takes name order; names
	// the order lists that are not storages are ignored.
	c := &Config{Storages: map[string]Module{"b": {Module: "storage.file"}, "a": {Module: "storage.file"}, "c": {Module: "storage.file"}}}
	if got, want := c.StorageNames(), []string{"a", "b", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("without StorageOrder: %v, want %v", got, want)
	}
	c.StorageOrder = []string{"c", "gone", "a", "c"}
	if got, want := c.StorageNames(), []string{"c", "a", "b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("with StorageOrder %v: %v, want %v", c.StorageOrder, got, want)
	}
}

func TestLoadReadsEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conserver.yml")
	if err := os.WriteFile(path, []byte(realistic), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OPENAI_API_KEY", "sk-test")
	t.Setenv("PG_PASSWORD", "from-env")
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := c.Storages["postgres"].Options["password"]; got != "from-env" {
		t.Errorf("password = %v, want from-env", got)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yml")); err == nil {
		t.Error("Load of a missing file: want an error")
	}
}

func TestRoundTrip(t *testing.T) {
	tricky := `
links:
  odd:
    module: links.tag
    options:
      float_whole: 1.0
      float: 0.25
      big: 1e+300
      word_yes: "yes"
      word_null: "null"
      digits: "0644"
      multiline: "line one\nline two: with colon\n"
      quote: 'it''s "quoted"'
      empty_map: {}
      empty_list: []
      nothing: null
      nested: [{a: [1, 2.5, "x"]}, [true, false]]
      literal: "$${NOT_A_VAR}"
  bare:
    module: links.tag
    options: {}
    limits: {max_concurrent: 3, budget: team-a/bare}
chains:
  c:
    links: [odd, bare]
    ingress_lists: [in]
    timeout: 1.5
tracers:
  jlinc: {module: tracers.jlinc, pip_name: jlinc, options: {hash_event_data: true}}
`
	for _, tc := range []struct {
		name string
		doc  string
		env  func(string) (string, bool)
	}{
		{"realistic resolved", realistic, envOf(map[string]string{"OPENAI_API_KEY": "sk-test"})},
		{"realistic unresolved", realistic, nil},
		{"tricky values unresolved", tricky, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first, err := Parse([]byte(tc.doc), tc.env)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			out, err := first.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			second, err := Parse(out, tc.env)
			if err != nil {
				t.Fatalf("Parse of Marshal output: %v\n%s", err, out)
			}
			if !reflect.DeepEqual(first, second) {
				t.Errorf("round trip changed the config\nfirst:  %#v\nsecond: %#v\nyaml:\n%s", first, second, out)
			}
			again, err := second.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if string(again) != string(out) {
				t.Errorf("Marshal is not deterministic:\n%s\n---\n%s", out, again)
			}
		})
	}
}

func TestMarshalKeepsReferencesForTheWorker(t *testing.T) {
	c, err := Parse([]byte(realistic), nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"${OPENAI_API_KEY}", "${PG_PASSWORD:-secret}"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("Marshal output lacks %s:\n%s", want, out)
		}
	}
	worker, err := Parse(out, envOf(map[string]string{"OPENAI_API_KEY": "sk-test"}))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(worker, realisticWant()) {
		t.Errorf("worker view of the rendered config differs:\n%#v", worker)
	}
}

func TestMarshalBuiltInGo(t *testing.T) {
	c := &Config{
		Links: map[string]Module{"t": {Module: "links.tag", Options: map[string]any{"tags": []string{"a"}, "n": 3}}},
		Chains: map[string]Chain{"c": {
			Links: []string{"t"}, IngressLists: []string{"in"}, Enabled: true, Timeout: 90 * time.Second,
		}},
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `links:
  t:
    module: links.tag
    options:
      "n": 3
      tags:
        - a
chains:
  c:
    links:
      - t
    ingress_lists:
      - in
    enabled: true
    timeout: 90
`
	if string(out) != want {
		t.Errorf("Marshal:\n%s\nwant:\n%s", out, want)
	}
	c.Extra = map[string]any{"chains": 1}
	if _, err := c.Marshal(); err == nil || !strings.Contains(err.Error(), `"chains"`) {
		t.Errorf("Marshal with a section in Extra: err = %v", err)
	}
}
