package config

import (
	"strings"
	"testing"
	"time"
)

// base is a valid configuration the invalid cases extend.
const base = `
links:
  tag: {module: links.tag, options: {tags: [a]}}
storages:
  file: {module: storage.file}
`

func TestInvalidConfigs(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		want []string
	}{
		{"not a map", "- a\n- b\n", []string{"the document must be a map"}},
		{"bad YAML", "links: [\n", []string{"not valid YAML"}},
		{"no chains", base, []string{"chains: no chain is defined"}},
		{"max_deliveries not a number", base + "chains: {c: {links: [], storages: [file], ingress_lists: [in], max_deliveries: many}}\n",
			[]string{"chains.c.max_deliveries: must be a whole number of deliveries, e.g. 3, got a string"}},
		{"max_deliveries out of range", base + "chains: {c: {links: [], storages: [file], ingress_lists: [in], max_deliveries: 1000}}\n",
			[]string{"chains.c.max_deliveries: is 1000; use 1 to 100"}},
		{"storage_failure not one of its values", base + "chains: {c: {links: [], storages: [file], ingress_lists: [in], storage_failure: DeadLetterStorage}}\n",
			[]string{"chains.c.storage_failure: must be dead_letter_vcon (retry the vCon, then dead-letter it before egress) or dead_letter_storage (dead-letter the failed write alone to DLQ:storage:{storage}, then egress), got a string"}},
		{"retry not a map", base + "chains: {c: {links: [], storages: [file], ingress_lists: [in], retry: 5}}\n",
			[]string{"chains.c.retry: must be a map such as {attempts: 5, initial_backoff: 30s, max_backoff: 10m}, got a number"}},
		{"retry's unreadable keys, every one", base + "chains: {c: {links: [], storages: [file], ingress_lists: [in], retry: {initial_backoff: soon, jitter: lots, backoff: 1}}}\n",
			[]string{"chains.c.retry.backoff: unknown key; retry takes attempts, initial_backoff, max_backoff, jitter",
				"chains.c.retry.initial_backoff: must be seconds", "chains.c.retry.jitter: must be a fraction from 0 to 1, e.g. 0.2, got a string"}},
		{"retry's values out of range, every one", base + "chains: {c: {links: [], storages: [file], ingress_lists: [in], retry: {attempts: 0, jitter: 2}}}\n",
			[]string{"chains.c.retry.attempts: is 0; use 1 (no retry) to 100", "chains.c.retry.jitter: is 2; use a fraction from 0 to 1"}},
		{"retry backoffs crossed", base + "chains: {c: {links: [], storages: [file], ingress_lists: [in], retry: {attempts: 3, initial_backoff: 10m, max_backoff: 1m}}}\n",
			[]string{"chains.c.retry.initial_backoff: is longer than max_backoff"}},
		{"module missing", base + "  bad: {options: {}}\nchains: {c: {links: [], storages: [file], ingress_lists: [in]}}\n",
			[]string{"storages.bad.module: is missing", "storage.file, storage.postgres"}},
		{"module not a string", "links:\n  t: {module: [links.tag]}\nchains: {c: {links: [t], ingress_lists: [in]}}\n",
			[]string{"links.t.module: must be a module name"}},
		{"unknown link module", "links:\n  t: {module: links.tagg}\nchains: {c: {links: [t], ingress_lists: [in]}}\n",
			[]string{`links.t.module: unknown link module "links.tagg"; known: links.analyze, links.jq_link, links.tag, links.webhook`}},
		{"unknown storage module", "storages:\n  s: {module: storage.mongo}\nchains: {c: {links: [], storages: [s], ingress_lists: [in]}}\n",
			[]string{`storages.s.module: unknown storage module "storage.mongo"`}},
		{"options not a map", "links:\n  t: {module: links.tag, options: [a]}\nchains: {c: {links: [t], ingress_lists: [in]}}\n",
			[]string{"links.t.options: must be a map, got a list"}},
		{"typo in an entry", "links:\n  t: {module: links.tag, option: {tags: [a]}}\nchains: {c: {links: [t], ingress_lists: [in]}}\n",
			[]string{"links.t.option: unknown key; an entry takes module, options and limits"}},
		{"limits on a storage", "storages:\n  s: {module: storage.file, limits: {max_concurrent: 2}}\nchains: {c: {links: [], storages: [s], ingress_lists: [in]}}\n",
			[]string{"storages.s.limits: only links take limits", "storages.s.limits"}},
		{"limits not a map", "links:\n  t: {module: links.tag, limits: 600}\nchains: {c: {links: [t], ingress_lists: [in]}}\n",
			[]string{"links.t.limits: must be a map such as {requests_per_minute: 600, max_concurrent: 20}, got a number"}},
		{"limits' bad values, every one", "links:\n  t: {module: links.tag, limits: {requests_per_minute: 0, tokens_per_minute: lots, max_concurrent: -1, rpm: 5, budget: 3}}\nchains: {c: {links: [t], ingress_lists: [in]}}\n",
			[]string{"links.t.limits.requests_per_minute: must be 1 or more", "links.t.limits.tokens_per_minute: must be a whole number of tokens_per_minute, got a string",
				"links.t.limits.max_concurrent: must be 1 or more", "links.t.limits.rpm: unknown key; limits take requests_per_minute, tokens_per_minute, max_concurrent, budget",
				"links.t.limits.budget: must be a budget name, got a number"}},
		{"undefined link", base + "chains: {c: {links: [tag, summarize], ingress_lists: [in]}}\n",
			[]string{`chains.c.links[1]: link "summarize" is not defined under links:`}},
		{"undefined storage", base + "chains: {c: {links: [tag], storages: [s3], ingress_lists: [in]}}\n",
			[]string{`chains.c.storages[0]: storage "s3" is not defined under storages:`}},
		{"no links key", base + "chains: {c: {storages: [file], ingress_lists: [in]}}\n",
			[]string{"chains.c: has no links key", "links: []"}},
		{"null links", base + "chains: {c: {links: , ingress_lists: [in]}}\n",
			[]string{"chains.c.links: is empty", "links: []"}},
		{"no ingress lists", base + "chains: {c: {links: [tag]}}\n",
			[]string{"chains.c.ingress_lists: is empty"}},
		{"ingress not a list", base + "chains: {c: {links: [tag], ingress_lists: default}}\n",
			[]string{"chains.c.ingress_lists: must be a list of names, got a string"}},
		{"ingress item not a string", base + "chains: {c: {links: [tag], ingress_lists: [42]}}\n",
			[]string{"chains.c.ingress_lists[0]: must be a name, got a number (quote it)"}},
		{"empty ingress name", base + "chains: {c: {links: [tag], ingress_lists: [in, '']}}\n",
			[]string{"chains.c.ingress_lists[1]: is empty"}},
		{"whitespace in a list name", base + "chains: {c: {links: [tag], ingress_lists: ['my list']}}\n",
			[]string{`chains.c.ingress_lists[0]: list name "my list" contains whitespace`}},
		{"ingress whose slot our keys cannot share", base + "chains: {c: {links: [tag], ingress_lists: [\"a}b\"], egress_lists: [out]}}\n",
			[]string{`chains.c.ingress_lists[0]: list "a}b" cannot be a queue: its Redis Cluster hash slot`}},
		{"egress onto the vCon index", base + "chains: {c: {links: [tag], ingress_lists: [in], egress_lists: [vcons]}}\n",
			[]string{`chains.c.egress_lists[0]: list "vcons" cannot be a queue: "vcons" is the vCon index (a sorted set)`}},
		{"ingress named like a body", base + "chains: {c: {links: [tag], ingress_lists: ['vcon:in']}}\n",
			[]string{`chains.c.ingress_lists[0]: list "vcon:in" cannot be a queue: keys starting with "vcon:" hold vCon data`}},
		{"egress named like a party index", base + "chains: {c: {links: [tag], ingress_lists: [in], egress_lists: ['tel:+1555']}}\n",
			[]string{`chains.c.egress_lists[0]: list "tel:+1555" cannot be a queue`}},
		{"duplicate ingress", base + "chains: {c: {links: [tag], ingress_lists: [in, in]}}\n",
			[]string{`chains.c.ingress_lists[1]: list "in" is listed twice`}},
		{"duplicate egress", base + "chains: {c: {links: [tag], ingress_lists: [in], egress_lists: [out, out]}}\n",
			[]string{`chains.c.egress_lists[1]: list "out" is listed twice`}},
		{"egress loops into ingress", base + "chains: {c: {links: [tag], ingress_lists: [in, b], egress_lists: [b]}}\n",
			[]string{`chains.c.egress_lists[0]: "b" is also an ingress list of this chain`}},
		{"two enabled chains on one list", base + "chains:\n  one: {links: [tag], ingress_lists: [in]}\n  two: {links: [], storages: [file], ingress_lists: [x, in], enabled: yes}\n",
			[]string{`chains.two.ingress_lists: ingress list "in" is also read by enabled chain "one"`, `chains "one" and "two"`}},
		{"negative timeout", base + "chains: {c: {links: [tag], ingress_lists: [in], timeout: -5}}\n",
			[]string{"chains.c.timeout: is negative"}},
		{"unparseable timeout", base + "chains: {c: {links: [tag], ingress_lists: [in], timeout: soon}}\n",
			[]string{`chains.c.timeout: must be seconds (e.g. 30 or 1.5) or a duration such as "90s"`}},
		{"bad enabled", base + "chains: {c: {links: [tag], ingress_lists: [in], enabled: maybe}}\n",
			[]string{"chains.c.enabled: must be true or false"}},
		{"typo in a chain", base + "chains: {c: {links: [tag], ingress_lists: [in], egress_list: [out]}}\n",
			[]string{"chains.c.egress_list: unknown key; a chain takes links, storages, ingress_lists, egress_lists, enabled, timeout"}},
		{"chain not a map", base + "chains: {c: [tag]}\n", []string{"chains.c: must be a map, got a list"}},
		{"duplicate key", base + "chains:\n  c: {links: [tag], ingress_lists: [in]}\n  c: {links: [], ingress_lists: [x]}\n",
			[]string{"chains.c: the key appears twice"}},
		{"empty ingress_auth key", base + "chains: {c: {links: [tag], ingress_lists: [in]}}\ningress_auth: {in: ['k', '']}\n",
			[]string{"ingress_auth.in[1]: is empty"}},
		{"ingress_auth not a key", base + "chains: {c: {links: [tag], ingress_lists: [in]}}\ningress_auth: {in: {k: v}}\n",
			[]string{"ingress_auth.in: must be an API key or a list of API keys, got a map"}},
		{"follower without its keys", base + "chains: {c: {links: [tag], ingress_lists: [in]}}\nfollowers: {up: {url: upstream:8000}}\n",
			[]string{"followers.up.url: must be the http(s) base URL", "followers.up.egress_list: is missing", "followers.up.follower_ingress_list: is missing",
				"followers.up.pulling_interval: must be a positive number", "followers.up.fetch_vcon_limit: is 0; use 1 to 10000"}},
		{"follower with credentials in its URL", base + "chains: {c: {links: [tag], ingress_lists: [in]}}\nfollowers: {up: {url: 'https://u:p@up', egress_list: out, follower_ingress_list: in, pulling_interval: 5, fetch_vcon_limit: 1}}\n",
			[]string{"followers.up.url: carries credentials; put the API token in auth_token"}},
		{"follower list names", base + "chains: {c: {links: [tag], ingress_lists: [in]}}\nfollowers: {up: {url: 'http://up', egress_list: 'o ut', follower_ingress_list: [in, in, 'vcon:x'], pulling_interval: 5, fetch_vcon_limit: 20000}}\n",
			[]string{`followers.up.egress_list: list name "o ut" contains whitespace`, `followers.up.follower_ingress_list[1]: list "in" is listed twice`,
				`followers.up.follower_ingress_list[2]: list "vcon:x" cannot be a queue`, "followers.up.fetch_vcon_limit: is 20000"}},
		{"follower typo and types", base + "chains: {c: {links: [tag], ingress_lists: [in]}}\nfollowers: {up: {url: 5, egress_lists: [o], pulling_interval: soon, fetch_vcon_limit: many}}\n",
			[]string{"followers.up.url: must be a string, got a number", "followers.up.egress_lists: unknown key; a follower takes url, egress_list, follower_ingress_list, auth_token, pulling_interval, fetch_vcon_limit",
				`followers.up.pulling_interval: must be seconds`, "followers.up.fetch_vcon_limit: must be a whole number of vCons per poll"}},
		{"import of a Python module", base + "chains: {c: {links: [tag], ingress_lists: [in]}}\nimports: {custom_utility: {module: custom_utils, pip_name: custom-utils-package}, legacy_module: some.legacy.module}\n",
			[]string{`imports.custom_utility: module "custom_utils" cannot be imported: this worker runs only its built-in modules (links.analyze,`,
				"and does not load or pip-install Python ones; remove the entry, and run custom code as a step service",
				`imports.legacy_module: module "some.legacy.module" cannot be imported`}},
		{"import entry shapes", base + "chains: {c: {links: [tag], ingress_lists: [in]}}\nimports: {a: [x], b: {module: links.tag, pip: x}, c: {pip_name: y}}\n",
			[]string{"imports.a: must be a module name or a map with module and pip_name, got a list", "imports.b.pip: unknown key; an import takes module and pip_name"}},
		{"import without a module", base + "chains: {c: {links: [tag], ingress_lists: [in]}}\nimports: {c: {pip_name: y}}\n",
			[]string{"imports.c.module: is missing; built-in modules need no import"}},
		{"tracer", base + "chains: {c: {links: [tag], ingress_lists: [in]}}\ntracers: {jlinc: {module: tracers.jlinc, options: {dlq_vcon_on_error: true}}}\n",
			[]string{`tracers.jlinc: tracer module "tracers.jlinc" is not run: this worker runs no conserver tracers; it exports OpenTelemetry traces`}},
		{"several problems at once", base + "chains:\n  a: {links: [nope], ingress_lists: []}\n  b: {links: [tag], ingress_lists: [in], timeout: -1}\n",
			[]string{`chains.a.links[0]: link "nope"`, "chains.a.ingress_lists: is empty", "chains.b.timeout: is negative"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.doc), envOf(nil))
			if err == nil {
				err = c.Validate(testValidator)
			}
			if err == nil {
				t.Fatalf("want an error containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestValidConfigs(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
	}{
		{"storage only chain", base + "chains: {c: {links: [], storages: [file], ingress_lists: [in]}}\n"},
		{"disabled chain may share a list", base + "chains:\n  a: {links: [tag], ingress_lists: [in]}\n  b: {links: [tag], ingress_lists: [in], enabled: false}\n"},
		{"chains feeding each other", base + "chains:\n  a: {links: [tag], ingress_lists: [in], egress_lists: [mid]}\n  b: {links: [tag], ingress_lists: [mid]}\n"},
		{"empty sections", "links:\nstorages:\nchains: {c: {links: [], ingress_lists: [in]}}\n"},
		{"imports of built-in modules and an empty tracers section", base + "chains: {c: {links: [tag], ingress_lists: [in]}}\nimports: {t: links.tag, f: {module: storage.file, pip_name: x}}\ntracers:\n"},
		{"follower", base + "chains: {c: {links: [tag], ingress_lists: [in]}}\nfollowers: {up: {url: 'https://up.example.com/api', egress_list: out, follower_ingress_list: in, auth_token: t, pulling_interval: 60, fetch_vcon_limit: 10}}\n"},
		{"pip_name accepted", "links:\n  t: {module: links.tag, pip_name: 'x==1'}\nchains: {c: {links: [t], ingress_lists: [in]}}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.doc), envOf(nil))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if err := c.Validate(testValidator); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestValidatorWithoutModuleListsSkipsNames(t *testing.T) {
	c, err := Parse([]byte("links:\n  t: {module: links.custom}\nchains: {c: {links: [t], ingress_lists: [in]}}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(Validator{}); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if err := c.Validate(testValidator); err == nil {
		t.Error("with module lists, links.custom must be refused")
	}
}

func chainWith(t *testing.T, key, value string) (Chain, error) {
	t.Helper()
	doc := "chains:\n  c:\n    links: []\n    ingress_lists: [in]\n"
	if key != "" {
		doc += "    " + key + ": " + value + "\n"
	}
	c, err := Parse([]byte(doc), envOf(nil))
	if err != nil {
		return Chain{}, err
	}
	return c.Chains["c"], nil
}

func TestEnabledForms(t *testing.T) {
	for _, tc := range []struct {
		value   string // "" leaves the key out
		want    bool
		wantErr bool
	}{
		{"", true, false},
		{"~", true, false},
		{"true", true, false},
		{"false", false, false},
		{"True", true, false},
		{"1", true, false},
		{"0", false, false},
		{`"1"`, true, false},
		{`"0"`, false, false},
		{`"true"`, true, false},
		{`"false"`, false, false},
		{"yes", true, false},
		{"no", false, false},
		{`"yes"`, true, false},
		{`"No"`, false, false},
		{"off", false, false},
		{"2", false, true},
		{"enabled", false, true},
		{"[true]", false, true},
	} {
		t.Run(tc.value, func(t *testing.T) {
			key := "enabled"
			if tc.value == "" {
				key = ""
			}
			ch, err := chainWith(t, key, tc.value)
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "chains.c.enabled") {
					t.Errorf("err = %v, want one naming chains.c.enabled", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ch.Enabled != tc.want {
				t.Errorf("Enabled = %v, want %v", ch.Enabled, tc.want)
			}
		})
	}
}

func TestTimeoutForms(t *testing.T) {
	for _, tc := range []struct {
		value   string
		want    time.Duration
		wantErr bool
	}{
		{"", 0, false},
		{"~", 0, false},
		{"0", 0, false},
		{"30", 30 * time.Second, false},
		{"1.5", 1500 * time.Millisecond, false},
		{`"45"`, 45 * time.Second, false},
		{`"90s"`, 90 * time.Second, false},
		{"2m30s", 150 * time.Second, false},
		{"250ms", 250 * time.Millisecond, false},
		{"0.000000001", time.Nanosecond, false},
		{"-5", -5 * time.Second, false}, // Parse keeps it; Validate refuses it
		{"soon", 0, true},
		{"true", 0, true},
		{".nan", 0, true},
		{".inf", 0, true},
		{"1e300", 0, true},
		{"99999999999999", 0, true},
		{"[30]", 0, true},
	} {
		t.Run(tc.value, func(t *testing.T) {
			key := "timeout"
			if tc.value == "" {
				key = ""
			}
			ch, err := chainWith(t, key, tc.value)
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "chains.c.timeout") {
					t.Errorf("err = %v, want one naming chains.c.timeout", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ch.Timeout != tc.want {
				t.Errorf("Timeout = %v, want %v", ch.Timeout, tc.want)
			}
			if tc.value == "" {
				return
			}
			// The written form must read back to the same duration.
			out, err := (&Config{Chains: map[string]Chain{"c": ch}}).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			back, err := Parse(out, nil)
			if err != nil {
				t.Fatalf("Parse(%s): %v", out, err)
			}
			if got := back.Chains["c"].Timeout; got != tc.want {
				t.Errorf("after Marshal: Timeout = %v, want %v (%s)", got, tc.want, out)
			}
		})
	}
}

// TestRetryRoundTrip: a chain's retry: and max_deliveries: read back as
// written (seconds or durations), and survive Marshal.
func TestRetryRoundTrip(t *testing.T) {
	doc := `
storages:
  file: {module: storage.file, options: {path: /tmp/x}}
chains:
  c:
    links: []
    storages: [file]
    ingress_lists: [in]
    max_deliveries: 5
    retry: {attempts: 7, initial_backoff: 2, max_backoff: 90s, jitter: 0.25}
`
	cfg, err := Parse([]byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Retry{Attempts: 7, InitialBackoff: 2 * time.Second, MaxBackoff: 90 * time.Second, Jitter: 0.25}
	check := func(cfg *Config, when string) {
		ch := cfg.Chains["c"]
		if ch.MaxDeliveries != 5 || ch.Retry == nil || *ch.Retry != want {
			t.Errorf("%s: max_deliveries %d, retry %+v; want 5, %+v", when, ch.MaxDeliveries, ch.Retry, want)
		}
	}
	check(cfg, "parsed")
	out, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(out, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	check(again, "after Marshal")
}

// TestStorageFailureForms: storage_failure reads back as written and
// survives Marshal; a file without it (a conserver file) dead-letters the
// failed write alone, as conserver does.
func TestStorageFailureForms(t *testing.T) {
	for _, tc := range []struct {
		name, line  string
		want        string
		wantStorage bool
	}{
		{"absent: conserver's behaviour", "", "", true},
		{"dead_letter_storage", "    storage_failure: dead_letter_storage\n", StorageFailureDeadLetterStorage, true},
		{"dead_letter_vcon", "    storage_failure: dead_letter_vcon\n", StorageFailureDeadLetterVcon, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := "storages:\n  file: {module: storage.file, options: {path: /tmp/x}}\nchains:\n  c:\n    links: []\n    storages: [file]\n    ingress_lists: [in]\n" + tc.line
			cfg, err := Parse([]byte(doc), nil)
			if err != nil {
				t.Fatal(err)
			}
			out, err := cfg.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			again, err := Parse(out, nil)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for when, c := range map[string]*Config{"parsed": cfg, "after Marshal": again} {
				ch := c.Chains["c"]
				if ch.StorageFailure != tc.want || ch.DeadLettersStorage() != tc.wantStorage {
					t.Errorf("%s: storage_failure %q (dead-letters the write alone: %v); want %q (%v)", when, ch.StorageFailure, ch.DeadLettersStorage(), tc.want, tc.wantStorage)
				}
			}
		})
	}
}
