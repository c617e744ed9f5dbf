package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/apiwire"
)

// The rules below are conserver's: its API validates a posted vCon with the
// pydantic models of api/api.py (vcon-dev/vcon-server), whose line numbers
// each case names. Expected locs and error types are what pydantic 2.12
// answers for the same document (FastAPI prefixes "body"), except where a
// case says ours differs on purpose.

const (
	refusedUUID = "018e5a2c-6b1f-7c3a-9d4e-00000000dead"
	baseTel0    = "+15550001111"
)

// vc is a valid vCon (two parties, one dialog naming both) with fields set
// to raw JSON values, or removed with the value "-".
func vc(uuid string, kv ...string) string {
	doc := map[string]json.RawMessage{
		"vcon":       json.RawMessage(`"0.0.1"`),
		"uuid":       json.RawMessage(`"` + uuid + `"`),
		"created_at": json.RawMessage(`"2024-01-15T10:30:00Z"`),
		"parties":    json.RawMessage(`[{"tel":"` + baseTel0 + `","name":"Agent"},{"tel":"+15550002222","mailto":"c@example.com"}]`),
		"dialog":     json.RawMessage(`[{"type":"recording","start":"2024-01-15T10:30:00Z","parties":[0,1],"duration":120,"mimetype":"audio/x-wav","url":"s3://bucket/r.wav","alg":"SHA-512","signature":"abc"}]`),
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "-" {
			delete(doc, kv[i])
		} else {
			doc[kv[i]] = json.RawMessage(kv[i+1])
		}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(fmt.Sprintf("vc %v: %v", kv, err))
	}
	return string(b)
}

// dialogWith is a one-entry dialog of the base vCon with fields replaced.
func dialogWith(kv ...string) string {
	e := map[string]json.RawMessage{"type": json.RawMessage(`"recording"`), "parties": json.RawMessage(`[0,1]`)}
	for i := 0; i+1 < len(kv); i += 2 {
		e[kv[i]] = json.RawMessage(kv[i+1])
	}
	b, _ := json.Marshal([]any{e})
	return string(b)
}

// submitEndpoint is a route that takes a vCon body.
type submitEndpoint struct {
	target string
	list   string // the list it queues on
	code   int    // on success
	opts   []reqOpt
}

// submitEndpoints: both routes that take a vCon, with and without /api.
func submitEndpoints() []submitEndpoint {
	partner := []reqOpt{noToken(), withHeader(apiwire.DefaultHeaderName, partnerKey)}
	return []submitEndpoint{
		{target: "/api/vcon?ingress_lists=work", list: "work", code: http.StatusCreated},
		{target: "/vcon?ingress_lists=work", list: "work", code: http.StatusCreated},
		{target: "/api/vcon/external-ingress?ingress_list=partner", list: "partner", code: http.StatusNoContent, opts: partner},
		{target: "/vcon/external-ingress?ingress_list=partner", list: "partner", code: http.StatusNoContent, opts: partner},
	}
}

type detailEntry struct {
	Loc  []any  `json:"loc"`
	Msg  string `json:"msg"`
	Type string `json:"type"`
}

// mustRefuse posts body and checks the 422 names loc with typ, and that
// nothing was stored, indexed or queued.
func (h *harness) mustRefuse(t *testing.T, ep submitEndpoint, body string, loc []any, typ string) {
	t.Helper()
	ctx := context.Background()
	before := dump(t, h.rdb)
	rec := h.doJSON("POST", ep.target, body, ep.opts...)
	mustStatus(t, rec, http.StatusUnprocessableEntity)
	got := decode[struct{ Detail []detailEntry }](t, rec)
	found := false
	for _, d := range got.Detail {
		if d.Msg == "" {
			t.Errorf("detail %+v has no msg", d)
		}
		if fmt.Sprint(d.Loc) == fmt.Sprint(loc) && d.Type == typ {
			found = true
		}
	}
	if !found {
		t.Errorf("detail %s, want an entry at loc %v of type %s", rec.Body.String(), loc, typ)
	}
	if d := diffDumps(before, dump(t, h.rdb)); d != "" {
		t.Errorf("a refused vCon changed Redis: %s", d)
	}
	if n := h.rdb.Exists(ctx, "vcon:"+refusedUUID).Val(); n != 0 {
		t.Errorf("refused vCon stored")
	}
	if err := h.rdb.ZScore(ctx, apiwire.DefaultSortedSet, "vcon:"+refusedUUID).Err(); err == nil {
		t.Errorf("refused vCon indexed in %s", apiwire.DefaultSortedSet)
	}
	if h.rdb.SIsMember(ctx, "tel:"+baseTel0, refusedUUID).Val() {
		t.Errorf("refused vCon in the party index")
	}
	if n := h.rdb.LLen(ctx, ep.list).Val(); n != 0 {
		t.Errorf("refused vCon queued on %s", ep.list)
	}
}

func TestRefusedAsConserverRefuses(t *testing.T) {
	u := refusedUUID
	loc := func(path ...any) []any { return append([]any{"body"}, path...) }
	cases := []struct {
		rule, source string
		body         string
		loc          []any
		typ          string
	}{
		// class Vcon, field by field.
		{"vcon missing", "api.py:381 vcon: str (fixture missing_uuid_and_vcon_version)", vc(u, "vcon", "-"), loc("vcon"), "missing"},
		{"vcon a number", "api.py:381", vc(u, "vcon", `0.4`), loc("vcon"), "string_type"},
		{"vcon null", "api.py:381", vc(u, "vcon", `null`), loc("vcon"), "string_type"},
		{"uuid missing", "api.py:382 uuid: UUID (fixture missing_uuid_and_vcon_version)", vc(u, "uuid", "-"), loc("uuid"), "missing"},
		{"uuid a number", "api.py:382", vc(u, "uuid", `12`), loc("uuid"), "uuid_type"},
		{"uuid null", "api.py:382", vc(u, "uuid", `null`), loc("uuid"), "uuid_type"},
		{"uuid empty", "api.py:382 (fixture empty_vcon)", vc(u, "uuid", `""`), loc("uuid"), "uuid_parsing"},
		{"uuid not a uuid", "api.py:382", vc(u, "uuid", `"../../etc/passwd"`), loc("uuid"), "uuid_parsing"},
		{"uuid with a space", "api.py:382", vc(u, "uuid", `" `+u+`"`), loc("uuid"), "uuid_parsing"},
		{"uuid one digit short", "api.py:382", vc(u, "uuid", `"`+u[:35]+`"`), loc("uuid"), "uuid_parsing"},
		{"created_at missing", "api.py:383 created_at: datetime", vc(u, "created_at", "-"), loc("created_at"), "missing"},
		{"created_at empty", "api.py:383 (fixture empty_vcon)", vc(u, "created_at", `""`), loc("created_at"), "datetime_from_date_parsing"},
		{"created_at words", "api.py:383", vc(u, "created_at", `"last tuesday"`), loc("created_at"), "datetime_from_date_parsing"},
		{"created_at null", "api.py:383", vc(u, "created_at", `null`), loc("created_at"), "datetime_type"},
		{"created_at a boolean", "api.py:383", vc(u, "created_at", `true`), loc("created_at"), "datetime_type"},
		{"created_at hour-only offset", "api.py:383 (pydantic refuses +01)", vc(u, "created_at", `"2024-01-15T10:30:00+01"`), loc("created_at"), "datetime_from_date_parsing"},
		{"created_at padded", "api.py:383 (pydantic does not trim)", vc(u, "created_at", `" 2024-01-15T10:30:00Z"`), loc("created_at"), "datetime_from_date_parsing"},
		{"created_at not a day", "api.py:383", vc(u, "created_at", `"2023-02-29T10:00:00Z"`), loc("created_at"), "datetime_from_date_parsing"},
		{"created_at hour 24", "api.py:383", vc(u, "created_at", `"2024-01-15T24:00:00Z"`), loc("created_at"), "datetime_from_date_parsing"},
		{"created_at year 0", "api.py:383", vc(u, "created_at", `"0000-01-15T10:30:00Z"`), loc("created_at"), "datetime_parsing"},
		{"created_at Unix time after 9999", "api.py:383", vc(u, "created_at", `1e20`), loc("created_at"), "datetime_parsing"},
		{"subject a number", "api.py:384 subject: Optional[str]", vc(u, "subject", `5`), loc("subject"), "string_type"},
		{"redacted null", "api.py:385 redacted: dict = {}", vc(u, "redacted", `null`), loc("redacted"), "dict_type"},
		{"redacted a list", "api.py:385", vc(u, "redacted", `[]`), loc("redacted"), "dict_type"},
		{"appended a list", "api.py:386 appended: Optional[dict]", vc(u, "appended", `[]`), loc("appended"), "dict_type"},
		{"group null", "api.py:387 group: List[Dict] = []", vc(u, "group", `null`), loc("group"), "list_type"},
		{"group an object", "api.py:387", vc(u, "group", `{}`), loc("group"), "list_type"},
		{"group item a number", "api.py:387", vc(u, "group", `[1]`), loc("group", 0), "dict_type"},
		{"parties null", "api.py:388 parties: List[PartyEntry] = [] (fixture null_parties)", vc(u, "parties", `null`, "dialog", `[]`), loc("parties"), "list_type"},
		{"parties an object", "api.py:388", vc(u, "parties", `{"tel":"+15550001111"}`, "dialog", `[]`), loc("parties"), "list_type"},
		{"party a string", "api.py:388", vc(u, "parties", `["alice"]`, "dialog", `[]`), loc("parties", 0), "model_type"},
		{"party null", "api.py:388", vc(u, "parties", `[null]`, "dialog", `[]`), loc("parties", 0), "model_type"},
		{"dialog null", "api.py:389 dialog: List[DialogEntry] = [] (fixture null_dialog_string_analysis)", vc(u, "dialog", `null`), loc("dialog"), "list_type"},
		{"dialog item a string", "api.py:389", vc(u, "dialog", `["hello"]`), loc("dialog", 0), "model_type"},
		{"analysis a string", "api.py:390 analysis: List[Dict] = [] (fixture null_dialog_string_analysis)", vc(u, "analysis", `"summary"`), loc("analysis"), "list_type"},
		{"analysis null", "api.py:390", vc(u, "analysis", `null`), loc("analysis"), "list_type"},
		{"analysis item a number", "api.py:390", vc(u, "analysis", `[{},3]`), loc("analysis", 1), "dict_type"},
		{"attachments null", "api.py:391 attachments: List[Dict] = []", vc(u, "attachments", `null`), loc("attachments"), "list_type"},
		{"attachment a list", "api.py:391", vc(u, "attachments", `[[]]`), loc("attachments", 0), "dict_type"},

		// class PartyEntry: tel: Optional[str], PartyEntry.tel_valid with _TEL_RE.
		{"tel a number", "api.py:351", vc(u, "parties", `[{"tel":15550001111}]`, "dialog", `[]`), loc("parties", 0, "tel"), "string_type"},
		{"tel empty", "api.py:353-358, _TEL_RE api.py:304", vc(u, "parties", `[{"tel":""}]`, "dialog", `[]`), loc("parties", 0, "tel"), "value_error"},
		{"tel with letters", "api.py:304", vc(u, "parties", `[{},{"tel":"+1555CALLNOW"}]`, "dialog", `[]`), loc("parties", 1, "tel"), "value_error"},
		{"tel four digits", "api.py:304 (five characters at least)", vc(u, "parties", `[{"tel":"1234"}]`, "dialog", `[]`), loc("parties", 0, "tel"), "value_error"},
		{"tel a SIP URI", "api.py:304", vc(u, "parties", `[{"tel":"sip:alice@example.com"}]`, "dialog", `[]`), loc("parties", 0, "tel"), "value_error"},
		{"tel a tel: URI", "api.py:304", vc(u, "parties", `[{"tel":"tel:+15550001111"}]`, "dialog", `[]`), loc("parties", 0, "tel"), "value_error"},
		{"tel starting with a space", "api.py:304", vc(u, "parties", `[{"tel":" +15550001111"}]`, "dialog", `[]`), loc("parties", 0, "tel"), "value_error"},
		{"tel starting with *", "api.py:304", vc(u, "parties", `[{"tel":"*67 5550001111"}]`, "dialog", `[]`), loc("parties", 0, "tel"), "value_error"},

		// class DialogEntry, field by field.
		{"duration negative", "api.py:318-323 duration_non_negative (fixture bad_duration)", vc(u, "dialog", dialogWith("duration", `-30`)), loc("dialog", 0, "duration"), "value_error"},
		{"duration negative in a string", "api.py:318-323", vc(u, "dialog", dialogWith("duration", `"-5"`)), loc("dialog", 0, "duration"), "value_error"},
		{"duration words", "api.py:311 duration: Optional[float] (fixture bad_dialog_types)", vc(u, "dialog", dialogWith("duration", `"long"`)), loc("dialog", 0, "duration"), "float_parsing"},
		{"duration an object", "api.py:311", vc(u, "dialog", dialogWith("duration", `{}`)), loc("dialog", 0, "duration"), "float_type"},
		{"start a number", "api.py:312 start: Optional[str]", vc(u, "dialog", dialogWith("start", `1700000000`)), loc("dialog", 0, "start"), "string_type"},
		{"dialog parties a number", "api.py:313 parties: Optional[List[int]]", vc(u, "dialog", dialogWith("parties", `0`)), loc("dialog", 0, "parties"), "list_type"},
		{"dialog parties nested", "api.py:313", vc(u, "dialog", dialogWith("parties", `[[0,1],1]`)), loc("dialog", 0, "parties", 0), "int_type"},
		{"dialog party a fraction", "api.py:313", vc(u, "dialog", dialogWith("parties", `[0.5]`)), loc("dialog", 0, "parties", 0), "int_from_float"},
		{"dialog party a word", "api.py:313", vc(u, "dialog", dialogWith("parties", `["agent"]`)), loc("dialog", 0, "parties", 0), "int_parsing"},
		{"dialog party null", "api.py:313", vc(u, "dialog", dialogWith("parties", `[null]`)), loc("dialog", 0, "parties", 0), "int_type"},
		{"url without a scheme", "api.py:325-330 url_valid, _URL_RE api.py:303 (fixture bad_url)", vc(u, "dialog", dialogWith("url", `"not-a-url"`)), loc("dialog", 0, "url"), "value_error"},
		{"url of symbols", "api.py:303 (fixture invalid_dialog_url)", vc(u, "dialog", dialogWith("url", `"not_a_valid_url_$$##"`)), loc("dialog", 0, "url"), "value_error"},
		{"url relative", "api.py:303", vc(u, "dialog", dialogWith("url", `"/recordings/r.wav"`)), loc("dialog", 0, "url"), "value_error"},
		{"url empty", "api.py:303", vc(u, "dialog", dialogWith("url", `""`)), loc("dialog", 0, "url"), "value_error"},
		{"url scheme only", "api.py:303", vc(u, "dialog", dialogWith("url", `"https://"`)), loc("dialog", 0, "url"), "value_error"},
		{"url without //", "api.py:303", vc(u, "dialog", dialogWith("url", `"mailto:a@example.com"`)), loc("dialog", 0, "url"), "value_error"},
		{"url a number", "api.py:314 url: Optional[str]", vc(u, "dialog", dialogWith("url", `5`)), loc("dialog", 0, "url"), "string_type"},
		{"mimetype of words", "api.py:332-337 mimetype_valid, _MIME_RE api.py:300 (fixture bad_mimetype)", vc(u, "dialog", dialogWith("mimetype", `"not a valid mimetype!"`)), loc("dialog", 0, "mimetype"), "value_error"},
		{"mimetype with parameters", "api.py:300", vc(u, "dialog", dialogWith("mimetype", `"audio/wav; codecs=1"`)), loc("dialog", 0, "mimetype"), "value_error"},
		{"mimetype empty", "api.py:300", vc(u, "dialog", dialogWith("mimetype", `""`)), loc("dialog", 0, "mimetype"), "value_error"},
		{"mimetype with a dot in the type", "api.py:300", vc(u, "dialog", dialogWith("mimetype", `"a.b/wav"`)), loc("dialog", 0, "mimetype"), "value_error"},
		{"mimetype a number", "api.py:315 mimetype: Optional[str] (fixture bad_dialog_types)", vc(u, "dialog", dialogWith("mimetype", `12345`)), loc("dialog", 0, "mimetype"), "string_type"},
		{"alg unknown", "api.py:339-344 alg_known, _VALID_ALG api.py:293", vc(u, "dialog", dialogWith("alg", `"MD5"`)), loc("dialog", 0, "alg"), "value_error"},
		{"alg lower case", "api.py:293", vc(u, "dialog", dialogWith("alg", `"sha-512"`)), loc("dialog", 0, "alg"), "value_error"},
		{"alg empty", "api.py:293", vc(u, "dialog", dialogWith("alg", `""`)), loc("dialog", 0, "alg"), "value_error"},
		{"alg a number", "api.py:316 alg: Optional[str]", vc(u, "dialog", dialogWith("alg", `512`)), loc("dialog", 0, "alg"), "string_type"},

		// Vcon.check_party_refs. conserver reports it at loc ["body"]; we
		// name the index (a deliberate difference, docs/migrating-from-conserver.md).
		{"party index out of range", "api.py:393-405 (fixture bad_party_ref)", vc(u, "dialog", dialogWith("parties", `[0,99]`)), loc("dialog", 0, "parties", 1), "value_error"},
		{"party index negative", "api.py:393-405", vc(u, "dialog", dialogWith("parties", `[-1]`)), loc("dialog", 0, "parties", 0), "value_error"},
		{"party index without parties", "api.py:393-405 (fixture out_of_range_party_indices)", vc(u, "parties", "-", "dialog", dialogWith("parties", `[0]`)), loc("dialog", 0, "parties", 0), "value_error"},
		{"party index as a string out of range", "api.py:313 coerces, then 393-405", vc(u, "dialog", dialogWith("parties", `["7"]`)), loc("dialog", 0, "parties", 0), "value_error"},

		// Ours only, on purpose (conserver accepts these).
		{"amended a number", "ours: the worker needs amended to be an object or list", vc(u, "amended", `5`), loc("amended"), "dict_or_list_type"},
		{"duration infinite", "ours: pydantic reads \"inf\", JSON cannot carry it", vc(u, "dialog", dialogWith("duration", `"inf"`)), loc("dialog", 0, "duration"), "finite_number"},
		{"duration NaN literal", "ours: Python's json reads NaN, JSON has no such value", strings.Replace(vc(u), `"duration":120`, `"duration":NaN`, 1), loc(), "json_invalid"},
	}
	h := newSubmitHarness(t)
	for _, tc := range cases {
		for _, ep := range submitEndpoints() {
			t.Run(tc.rule+" "+strings.SplitN(ep.target, "?", 2)[0], func(t *testing.T) {
				h.mustRefuse(t, ep, tc.body, tc.loc, tc.typ)
			})
		}
	}
}

// TestConserverInvalidFixtures posts conserver's own invalid fixtures
// (testdata/conserver-invalid, from its common/tests/invalid_fixtures) to
// every vCon route: each is refused with the locs and types pydantic gives
// for it, and nothing is written.
func TestConserverInvalidFixtures(t *testing.T) {
	// pydantic's errors for each fixture, except check_party_refs, which
	// conserver reports at ["body"] and we at the index.
	want := map[string][]string{
		"bad_dialog_types":              {"body.dialog.0.duration float_parsing", "body.dialog.0.mimetype string_type"},
		"bad_duration":                  {"body.dialog.0.duration value_error"},
		"bad_mimetype":                  {"body.dialog.0.mimetype value_error"},
		"bad_party_ref":                 {"body.dialog.0.parties.1 value_error"},
		"bad_url":                       {"body.dialog.0.url value_error"},
		"empty_vcon":                    {"body.created_at datetime_from_date_parsing", "body.uuid uuid_parsing"},
		"invalid_dialog_url":            {"body.dialog.0.url value_error"},
		"missing_uuid_and_vcon_version": {"body.uuid missing", "body.vcon missing"},
		"null_dialog_string_analysis":   {"body.analysis list_type", "body.dialog list_type"},
		"null_parties":                  {"body.dialog.0.duration float_parsing", "body.dialog.0.mimetype string_type", "body.parties list_type"},
		"out_of_range_party_indices":    {},
	}
	files, err := filepath.Glob("testdata/conserver-invalid/*.json")
	if err != nil || len(files) != len(want) {
		t.Fatalf("fixtures %v (%v), want %d", files, err, len(want))
	}
	h := newSubmitHarness(t)
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, ep := range submitEndpoints() {
			t.Run(name+" "+strings.SplitN(ep.target, "?", 2)[0], func(t *testing.T) {
				before := dump(t, h.rdb)
				rec := h.doJSON("POST", ep.target, string(body), ep.opts...)
				mustStatus(t, rec, http.StatusUnprocessableEntity)
				var got []string
				for _, d := range decode[struct{ Detail []detailEntry }](t, rec).Detail {
					parts := make([]string, len(d.Loc))
					for i, p := range d.Loc {
						parts[i] = fmt.Sprint(p)
					}
					got = append(got, strings.Join(parts, ".")+" "+d.Type)
				}
				sort.Strings(got)
				w, ok := want[name]
				if !ok {
					t.Fatalf("no expectation for fixture %s", name)
				}
				if name == "out_of_range_party_indices" {
					// Several indices out of range; each is named.
					for _, g := range got {
						if !strings.HasPrefix(g, "body.dialog.") || !strings.HasSuffix(g, " value_error") {
							t.Errorf("detail %s, want only out-of-range party indices", g)
						}
					}
				} else if !reflect.DeepEqual(got, w) {
					t.Errorf("detail %v, want %v", got, w)
				}
				if d := diffDumps(before, dump(t, h.rdb)); d != "" {
					t.Errorf("a refused vCon changed Redis: %s", d)
				}
			})
		}
	}
}

// TestAcceptedAsConserverAccepts: what pydantic's lax mode accepts is
// accepted, and what it coerces is stored coerced, as conserver stores its
// model_dump(); the rest is stored as sent.
func TestAcceptedAsConserverAccepts(t *testing.T) {
	type check func(t *testing.T, doc map[string]any)
	field := func(path string, want any) check {
		return func(t *testing.T, doc map[string]any) {
			t.Helper()
			var cur any = doc
			for _, p := range strings.Split(path, ".") {
				switch c := cur.(type) {
				case map[string]any:
					cur = c[p]
				case []any:
					var i int
					fmt.Sscan(p, &i)
					cur = c[i]
				}
			}
			if fmt.Sprint(cur) != fmt.Sprint(want) {
				t.Errorf("%s = %v, want %v", path, cur, want)
			}
		}
	}
	n := 0
	next := func() string { n++; return fmt.Sprintf("018e5a2c-6b1f-7c3a-9d4e-%012x", n) }
	cases := []struct {
		rule, source string
		body         func(u string) string
		checks       []check
	}{
		{"uuid upper case", "api.py:382, stored as str(UUID)", func(u string) string { return vc(strings.ToUpper(u)) }, nil},
		{"uuid without hyphens", "api.py:382 (pydantic reads the simple form)", func(u string) string { return vc(strings.ReplaceAll(u, "-", "")) }, nil},
		{"uuid in braces", "api.py:382", func(u string) string { return vc("{" + u + "}") }, nil},
		{"uuid as a URN", "api.py:382", func(u string) string { return vc("urn:uuid:" + u) }, nil},
		{"created_at a Unix time", "api.py:383, stored as isoformat()", func(u string) string { return vc(u, "created_at", `1700000000`) },
			[]check{field("created_at", "2023-11-14T22:13:20+00:00")}},
		{"created_at Unix milliseconds", "api.py:383", func(u string) string { return vc(u, "created_at", `1700000000123`) },
			[]check{field("created_at", "2023-11-14T22:13:20.123000+00:00")}},
		{"created_at a numeric string", "api.py:383", func(u string) string { return vc(u, "created_at", `"1700000000.5"`) },
			[]check{field("created_at", "2023-11-14T22:13:20.500000+00:00")}},
		{"created_at with _", "api.py:383", func(u string) string { return vc(u, "created_at", `"2024-01-15_10:30:00"`) },
			[]check{field("created_at", "2024-01-15T10:30:00")}},
		{"created_at a date", "api.py:383 (kept as sent)", func(u string) string { return vc(u, "created_at", `"2024-01-15"`) },
			[]check{field("created_at", "2024-01-15")}},
		{"created_at offset without colon", "api.py:383 (kept as sent)", func(u string) string { return vc(u, "created_at", `"2024-01-15T10:30:00+0100"`) },
			[]check{field("created_at", "2024-01-15T10:30:00+0100")}},
		{"vcon empty", "api.py:381", func(u string) string { return vc(u, "vcon", `""`) }, []check{field("vcon", "")}},
		{"nullable fields null", "api.py:384, 386, 311-316", func(u string) string {
			return vc(u, "subject", `null`, "appended", `null`, "dialog", dialogWith("duration", `null`, "start", `null`, "url", `null`, "mimetype", `null`, "alg", `null`, "parties", `null`))
		}, nil},
		{"duration a numeric string", "api.py:311 (stored as a number)", func(u string) string { return vc(u, "dialog", dialogWith("duration", `" 60.5 "`)) },
			[]check{field("dialog.0.duration", 60.5)}},
		{"duration a boolean", "api.py:311", func(u string) string { return vc(u, "dialog", dialogWith("duration", `true`)) },
			[]check{field("dialog.0.duration", 1)}},
		{"duration zero", "api.py:318-323", func(u string) string { return vc(u, "dialog", dialogWith("duration", `0`)) }, nil},
		{"party indices coerced", "api.py:313 (stored as integers)", func(u string) string { return vc(u, "dialog", dialogWith("parties", `["1"," 0",1.0,true]`)) },
			[]check{field("dialog.0.parties", []any{1, 0, 1, 1})}},
		{"party indices empty", "api.py:313", func(u string) string { return vc(u, "dialog", dialogWith("parties", `[]`)) }, nil},
		{"tels conserver accepts", "api.py:304", func(u string) string {
			return vc(u, "parties", `[{"tel":null},{"tel":"+1234"},{"tel":"(555) 000-1111"},{"tel":"555-0001 x12"},{"tel":"+15550001111\n"},{"tel":"+١٢٣٤٥"},{"tel":"+1 555\u00a0000 1111"}]`, "dialog", `[]`)
		}, nil},
		{"urls conserver accepts", "api.py:303", func(u string) string {
			return vc(u, "dialog", `[{"url":"s3://bucket/r.wav"},{"url":"https://example.com/r?x=1"},{"url":"file:///data/r.wav"},{"url":"x-custom+v1.2://anything"}]`)
		}, nil},
		{"mimetypes conserver accepts", "api.py:300", func(u string) string {
			return vc(u, "dialog", `[{"mimetype":"audio/x-wav"},{"mimetype":"application/vnd.api+json"},{"mimetype":"audio/x.wav"},{"mimetype":"AUDIO/WAV"}]`)
		}, nil},
		{"every alg conserver knows", "api.py:293-299", func(u string) string {
			var es []string
			for _, a := range []string{"SHA-256", "SHA-384", "SHA-512", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"} {
				es = append(es, `{"alg":"`+a+`"}`)
			}
			return vc(u, "dialog", "["+strings.Join(es, ",")+"]")
		}, nil},
		{"fields conserver does not check", "api.py:307-358 (only dialog entries are checked; extra='allow')", func(u string) string {
			return vc(u, "parties", `[{"tel":"+15550001111","url":"nope","mailto":5,"name":6}]`, "dialog", `[{"mediatype":"not a mimetype","body":{"x":1}}]`,
				"analysis", `[{"url":"nope","mimetype":"bad","alg":"MD5"}]`, "attachments", `[{"alg":"MD5","url":"nope"}]`, "amended", `[]`, "x_custom", `{"kept":true}`)
		}, []check{field("x_custom.kept", true), field("parties.0.url", "nope"), field("dialog.0.mediatype", "not a mimetype")}},
	}
	h := newSubmitHarness(t)
	ctx := context.Background()
	for _, tc := range cases {
		for _, ep := range submitEndpoints() {
			t.Run(tc.rule+" "+strings.SplitN(ep.target, "?", 2)[0], func(t *testing.T) {
				u := next()
				rec := h.doJSON("POST", ep.target, tc.body(u), ep.opts...)
				mustStatus(t, rec, ep.code)
				got := h.doJSON("GET", "/api/vcon/"+u, "")
				mustStatus(t, got, http.StatusOK)
				doc := decode[map[string]any](t, got)
				if doc["uuid"] != u {
					t.Errorf("stored uuid %v, want %s", doc["uuid"], u)
				}
				for _, c := range tc.checks {
					c(t, doc)
				}
				if err := h.rdb.ZScore(ctx, apiwire.DefaultSortedSet, "vcon:"+u).Err(); err != nil {
					t.Errorf("not in the listing index: %v", err)
				}
				if q := h.rdb.LRange(ctx, ep.list, -1, -1).Val(); len(q) != 1 || q[0] != u {
					t.Errorf("%s tail = %v, want %s", ep.list, q, u)
				}
			})
		}
	}
}
