package vcon

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/vcon/sample"
)

// lazySamples are documents in the encoder's own form, so that Parse
// keeps parts of them raw: an object body, parties, nested unknown
// members, a legacy tags body that is a list, escapes of every kind.
var lazySamples = []string{
	`{"analysis":[{"body":{"words":[{"end":0.25,"start":0,"word":"hi"}]},"dialog":0,"encoding":"json","type":"transcript"}],"created_at":"2024-03-05T10:00:00Z","dialog":[{"duration":1,"meta":{"a":[1]},"parties":[0,1],"type":"text"}],"parties":[{"name":"A"},{"tel":"+1555"}],"uuid":"0185f9a4-6f2b-8f77-a6e3-9b2c1d0e4f5a","vcon":"0.0.1"}`,
	`{"attachments":[{"body":["a:b","c:d"],"type":"tags"},{"body":{"k":"v"},"purpose":"tags"}],"uuid":"x","x":{"deep":{"n":[1,{"":"","a":"\"\\\b\f\n\r\t\u0000\u001f\u2028\u2029é"}]}}}`,
	`{"dialog":[{"body":[],"parties":[[0,[1]]]},{"body":{}}],"group":[{"uuid":"u"}],"redacted":{"uuid":"r"},"amended":{"x":[{"y":1}]}}`,
	`{"parties":[{"b":1,"a":2},{"a":{"c":1, "b":2}},{"a":"\u00E9"},{"a":"\/"},{"a":1,"a":2},{"a\u0062":1},{"a":"<&>"}],"dialog":[{"x":{"a":"\ud800"}},{"x":{"a":"` + "\xff" + `"}}]}`,
	`{"critical":[{"a":1}],"must_support":[[1]],"analysis":[{"body":{"b":1,"a":0},"type":"x"}]}`,
	// Syntax errors inside a subtree that could be raw, which reading it
	// whole words otherwise.
	`{"parties":[{0:1}]}`, `{"x":{"a":1,}}`, `{"x":{"a":[1 2]}}`, `{"x":{"a":"\x"}}`,
}

// lazyInputs are the inputs every lazy/eager comparison runs on.
func lazyInputs() []string {
	in := append([]string{}, lazySamples...)
	for _, c := range rawArrayCases {
		in = append(in, c.doc())
	}
	for _, s := range samples {
		in = append(in, s)
	}
	for _, shape := range []bool{false, true} {
		in = append(in, string(sample.Large("0190d6f0-1c2d-7a00-8000-000000000001", 300<<10, shape)))
	}
	return append(in, string(sample.Document("0190d6f0-1c2d-7a00-8000-000000000001", 5000)))
}

// checkLazyMatchesEager fails when the document Parse keeps partly raw
// reads, validates, normalises, tags or encodes differently from the one
// decoded all through, as Parse decoded every document before.
func checkLazyMatchesEager(t *testing.T, data []byte) {
	t.Helper()
	defer func(n int) { minRawText = n }(minRawText)
	for _, n := range []int{minRawText, 0} {
		// With 0, every string where a raw node may be is one: short
		// names and values (purpose, encoding) are read through too.
		minRawText = n
		checkLazyMatchesEagerOnce(t, data)
	}
}

func checkLazyMatchesEagerOnce(t *testing.T, data []byte) {
	t.Helper()
	for _, shared := range []bool{false, true} {
		eager, eagerErr := parseEager(data, shared)
		lazy, lazyErr := parse(data, shared)
		if (eagerErr == nil) != (lazyErr == nil) {
			t.Fatalf("parse: lazy error %v, eager error %v", lazyErr, eagerErr)
		}
		if eagerErr != nil {
			if eagerErr.Error() != lazyErr.Error() {
				t.Fatalf("parse errors differ: lazy %v, eager %v", lazyErr, eagerErr)
			}
			return
		}
		same := func(what string, lazyBytes, eagerBytes []byte) {
			t.Helper()
			if !bytes.Equal(lazyBytes, eagerBytes) {
				t.Fatalf("%s differs:\nlazy:  %s\neager: %s", what, lazyBytes, eagerBytes)
			}
		}
		same("Marshal", mustMarshal(t, lazy), mustMarshal(t, eager))
		if n, m := encodedLen(lazy.tree()), len(mustMarshal(t, lazy)); n != m && !lazy.Secured() {
			t.Fatalf("encodedLen = %d, encoding is %d bytes", n, m)
		}
		if a, b := Validate(lazy), Validate(eager); !reflect.DeepEqual(a, b) {
			t.Fatalf("Validate: lazy %v, eager %v", a, b)
		}
		if a, b := fmt.Sprint(Tags(lazy), RoutingTags(lazy), Critical(lazy), lazy.UUID(), lazy.Form()),
			fmt.Sprint(Tags(eager), RoutingTags(eager), Critical(eager), eager.UUID(), eager.Form()); a != b {
			t.Fatalf("readers: lazy %s, eager %s", a, b)
		}
		same("Normalized", mustMarshal(t, Normalized(lazy)), mustMarshal(t, Normalized(eager)))
		same("ToVersion001", mustMarshal(t, ToVersion001(lazy)), mustMarshal(t, ToVersion001(eager)))
		same("ConserverView", mustMarshal(t, ConserverView(lazy)), mustMarshal(t, ConserverView(eager)))
		same("Clone", mustMarshal(t, lazy.Clone()), mustMarshal(t, eager.Clone()))
		same("Marshal after the views", mustMarshal(t, lazy), mustMarshal(t, eager))

		AddTag(lazy, "k", "v")
		AddTag(eager, "k", "v")
		same("AddTag", mustMarshal(t, lazy), mustMarshal(t, eager))
		Normalize(lazy)
		Normalize(eager)
		same("Normalize", mustMarshal(t, lazy), mustMarshal(t, eager))
		if !reflect.DeepEqual(lazy.Doc(), eager.Doc()) {
			t.Fatalf("Doc differs:\nlazy:  %#v\neager: %#v", lazy.Doc(), eager.Doc())
		}

		// The API's path, on documents parsed afresh.
		lazy, _ = parse(data, shared)
		eager, _ = parseEager(data, shared)
		lazyErrs, lazyChanged := CheckSubmission(lazy)
		eagerErrs, eagerChanged := CheckSubmission(eager)
		if !reflect.DeepEqual(lazyErrs, eagerErrs) || lazyChanged != eagerChanged {
			t.Fatalf("CheckSubmission: lazy %v %v, eager %v %v", lazyErrs, lazyChanged, eagerErrs, eagerChanged)
		}
		if AddDefaultArrays(lazy) != AddDefaultArrays(eager) {
			t.Fatal("AddDefaultArrays differs")
		}
		same("CheckSubmission", mustMarshal(t, lazy), mustMarshal(t, eager))

		// The worker's path, in its order: Validate first, on what
		// Parse kept raw (rawArray); then Normalize and the encoding.
		for _, tag := range []bool{false, true} {
			lazy, _ = parse(data, shared)
			eager, _ = parseEager(data, shared)
			if a, b := Validate(lazy), Validate(eager); !reflect.DeepEqual(a, b) {
				t.Fatalf("Validate of a fresh document: lazy %v, eager %v", a, b)
			}
			if tag {
				AddTag(lazy, "k", "v")
				AddTag(eager, "k", "v")
			}
			Normalize(lazy)
			Normalize(eager)
			same("Validate, Normalize, Marshal", mustMarshal(t, lazy), mustMarshal(t, eager))
			if a, b := Validate(lazy), Validate(eager); !reflect.DeepEqual(a, b) {
				t.Fatalf("Validate after Normalize: lazy %v, eager %v", a, b)
			}
			// A link after the storage's Normalize (a chain of
			// links.tag reads what an earlier one wrote).
			AddTag(lazy, "n", "m")
			AddTag(eager, "n", "m")
			same("Normalize, AddTag", mustMarshal(t, lazy), mustMarshal(t, eager))
		}

		// A raw dialog's party indices are checked against the parties
		// the document has when Validate runs, not when it was parsed.
		lazy, _ = parse(data, shared)
		eager, _ = parseEager(data, shared)
		if a, b := Validate(lazy), Validate(eager); !reflect.DeepEqual(a, b) {
			t.Fatalf("Validate: lazy %v, eager %v", a, b)
		}
		lazy.Append(Parties, map[string]any{"name": "added"})
		eager.Append(Parties, map[string]any{"name": "added"})
		if a, b := Validate(lazy), Validate(eager); !reflect.DeepEqual(a, b) {
			t.Fatalf("Validate after a party was added: lazy %v, eager %v", a, b)
		}
		same("Append(Parties)", mustMarshal(t, lazy), mustMarshal(t, eager))
	}
}

func TestLazyParseMatchesEager(t *testing.T) {
	for i, in := range lazyInputs() {
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkLazyMatchesEager(t, []byte(in)) })
	}
}

func FuzzLazyParseMatchesEager(f *testing.F) {
	for _, in := range lazySamples {
		f.Add([]byte(in))
	}
	for _, s := range samples {
		f.Add([]byte(s))
	}
	for _, c := range rawArrayCases {
		f.Add([]byte(c.doc()))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkLazyMatchesEager(t, data) })
}

// FuzzCanonical: what canonical (for a string, canonicalString)
// accepts, appendJSON writes back byte for byte. This is the property
// that makes a raw node's bytes its encoding.
func FuzzCanonical(f *testing.F) {
	for _, in := range lazySamples {
		f.Add([]byte(in))
	}
	for _, s := range []string{`{}`, `[]`, `{"a":1,"b":[true,false,null,-0.5e+3]}`, `{"b":1,"a":1}`, `{"a":1,"a":1}`, `["\u001F"]`, `["\u007f"]`, `[" "]`, `[ 1]`,
		`"\u2028\n\u0001"`, `"\u00e9"`, `"\/"`, "\"\xff\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		x, err := decode(data)
		if err != nil {
			return
		}
		text := bytes.TrimSpace(data)
		switch x.(type) {
		case map[string]any, []any:
			if !canonical(text) {
				return
			}
		case string:
			// A long string kept as rawText.
			if end, ok := canonicalString(text, 1); !ok || end != len(text)-1 {
				return
			}
		default:
			return
		}
		got, err := appendJSON(nil, x)
		if err != nil {
			t.Fatalf("appendJSON: %v", err)
		}
		if !bytes.Equal(got, text) {
			t.Fatalf("canonical(%q), but it encodes as %q", text, got)
		}
	})
}

// TestCanonical pins what is and is not the encoder's form.
func TestCanonical(t *testing.T) {
	for _, tc := range []struct {
		text string
		want bool
	}{
		{`{}`, true},
		{`[]`, true},
		{`{"a":1,"b":{"a":[1,"x"]},"c":null}`, true},
		{`{"":1,"a":2}`, true},
		{`["\"\\\b\f\n\r\t\u0000\u001f\u2028\u2029"]`, true},
		{`["é日本\u007f"]`, false}, // \u007f is written as the byte
		{"[\"\x7f\"]", true},
		{`{"b":1,"a":2}`, false},
		{`{"a":1,"a":2}`, false},
		{`{"a":1, "b":2}`, false},
		{"[1,\n2]", false},
		{`["\/"]`, false},
		{`["\u00e9"]`, false},
		{`["\u001F"]`, false},
		{`["\u000a"]`, false},
		{`["\ud83d\ude00"]`, false},
		{"[\"\u2028\"]", false},
		{"[\"\xff\"]", false},
		{`{"a\u0062":1}`, false},
		{strings.Repeat("[", 65) + strings.Repeat("]", 65), false},
		{strings.Repeat("[", 64) + strings.Repeat("]", 64), true},
	} {
		if got := canonical([]byte(tc.text)); got != tc.want {
			t.Errorf("canonical(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
}

// findRaw returns the path of a raw node in x, or "".
func findRaw(x any, path string) string {
	switch t := x.(type) {
	case rawJSON, rawText:
		return path + " (raw)"
	case map[string]any:
		for k, e := range t {
			if p := findRaw(e, path+"."+k); p != "" {
				return p
			}
		}
	case []any:
		for i, e := range t {
			if p := findRaw(e, fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	}
	return ""
}

// TestAccessorsNeverHandOutRawNodes calls each way a caller reaches the
// tree first on a freshly parsed document whose every part that can be
// raw is.
func TestAccessorsNeverHandOutRawNodes(t *testing.T) {
	doc := []byte(`{"analysis":[{"body":{"w":[{"a":1}]},"dialog":[0],"meta":{"m":1},"type":"transcript"}],` +
		`"attachments":[{"body":["a:b"],"meta":[1],"type":"tags"}],"created_at":"2024-03-05T10:00:00Z",` +
		`"dialog":[{"body":{"b":1},"parties":[0],"x":[{"y":2}]}],"group":[{"uuid":"g"}],"parties":[{"meta":{"k":[1]},"name":"A"}],` +
		`"uuid":"0185f9a4-6f2b-8f77-a6e3-9b2c1d0e4f5a","x_top":{"nested":{"k":1}}}`)
	if v, _ := Parse(doc); findRaw(v.tree(), "") == "" {
		t.Fatal("the document has no raw node: the test tests nothing")
	}
	for _, tc := range []struct {
		name string
		get  func(v *VCon) any
	}{
		{"Doc", func(v *VCon) any { return v.Doc() }},
		{"List(parties)", func(v *VCon) any { return v.List(Parties) }},
		{"List(dialog)", func(v *VCon) any { return v.List(Dialog) }},
		{"List(analysis)", func(v *VCon) any { return v.List(Analysis) }},
		{"List(attachments)", func(v *VCon) any { return v.List(Attachments) }},
		{"List(group)", func(v *VCon) any { return v.List("group") }},
		{"FindAnalysis", func(v *VCon) any { return FindAnalysis(v, 0, "transcript") }},
		{"ConserverView", func(v *VCon) any { return ConserverView(v).Doc() }},
		{"Normalized", func(v *VCon) any { return Normalized(v).Doc() }},
		{"ToVersion001", func(v *VCon) any { return ToVersion001(v).Doc() }},
		{"Clone", func(v *VCon) any { return v.Clone().Doc() }},
		{"Replace", func(v *VCon) any { w := New("x"); w.Replace(v); return w.Doc() }},
		{"List after Normalize", func(v *VCon) any { Normalize(v); return v.List(Analysis) }},
		{"Doc after AddTag", func(v *VCon) any { AddTag(v, "k", "v"); return v.Doc() }},
		{"CheckSubmission", func(v *VCon) any { CheckSubmission(v); return v.Doc() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Parse(doc)
			if err != nil {
				t.Fatal(err)
			}
			var x any
			switch got := tc.get(v).(type) {
			case []map[string]any:
				s := make([]any, len(got))
				for i, m := range got {
					s[i] = m
				}
				x = s
			case map[string]any:
				x = got
			default:
				t.Fatalf("%T", got)
			}
			if p := findRaw(x, ""); p != "" {
				t.Fatalf("a raw node at %s", p)
			}
		})
	}
}

// TestTagRoundTripLeavesObjectBodyRaw is what issue #21 asks of a chain
// of links.tag: the transcript's words are never decoded, so the
// allocations of a parse, tag, normalise and encode do not grow with
// them.
func TestTagRoundTripLeavesObjectBodyRaw(t *testing.T) {
	run := func(doc []byte) {
		v, err := ParseReadOnly(doc)
		if err != nil {
			t.Fatal(err)
		}
		if errs := Validate(v); len(errs) > 0 {
			t.Fatal(errs)
		}
		AddTag(v, "benchmarked", "benchmarked")
		Normalize(v)
		if _, err := v.AppendMarshal(nil); err != nil {
			t.Fatal(err)
		}
	}
	small := sample.Large("0190d6f0-1c2d-7a00-8000-000000000001", 400<<10, true)
	large := sample.Large("0190d6f0-1c2d-7a00-8000-000000000001", 1600<<10, true)
	v, _ := ParseReadOnly(large)
	if _, raw := FindAnalysis(v.Clone(), 0, "transcript")["body"].(map[string]any); !raw {
		t.Fatal("the transcript body is not an object: the test tests nothing")
	}
	if _, isRaw := objects(v.tree(), Analysis)[transcriptIndex(v)]["body"].(rawJSON); !isRaw {
		t.Fatal("the transcript body was decoded")
	}
	a, b := testing.AllocsPerRun(3, func() { run(small) }), testing.AllocsPerRun(3, func() { run(large) })
	// The words are about a quarter of the bytes: some 1,400 objects in
	// the small document, 5,700 in the large, each several allocations
	// when decoded.
	if b > a+50 {
		t.Fatalf("allocations grow with the transcript: %.0f for the small document, %.0f for one four times larger", a, b)
	}
}

// transcriptIndex is the index of sample.Large's transcript among
// the analysis entries.
func transcriptIndex(v *VCon) int {
	for i, a := range objects(v.tree(), Analysis) {
		if a["type"] == "transcript" {
			return i
		}
	}
	return -1
}

// TestLongStringsStayRaw: the summaries of a large vCon (text that needs
// escapes) and a transcript's JSON text are written back as they were
// read, neither unescaped into a copy nor escaped again.
func TestLongStringsStayRaw(t *testing.T) {
	doc := sample.Large("0190d6f0-1c2d-7a00-8000-000000000001", 400<<10, false)
	v, err := ParseReadOnly(doc)
	if err != nil {
		t.Fatal(err)
	}
	AddTag(v, "k", "v")
	Normalize(v)
	// Already valid and normal, the analysis is kept whole (rawArray);
	// decoded, its entries keep their bodies raw.
	raw, isRaw := v.tree()[Analysis].(*rawArray)
	if !isRaw {
		t.Fatal("the analysis, valid and normal, was decoded")
	}
	var kept int
	for _, a := range objects(map[string]any{Analysis: raw.entries(Analysis)}, Analysis) {
		if _, ok := a["body"].(rawText); ok {
			kept++
		}
	}
	if kept != sample.LargeDialogs+1 {
		t.Fatalf("%d of the %d analysis bodies kept raw", kept, sample.LargeDialogs+1)
	}
	if s, _ := FindAnalysis(v, 0, "summary")["body"].(string); !strings.Contains(s, "\n") {
		t.Fatalf("the summary read through List is not its text: %.40q", s)
	}
}

// TestConcurrentReadersOfALazyDocument: storages read one document at
// once (the pipeline runs them in parallel), some encoding it, some
// decoding parts of it. Run with -race.
func TestConcurrentReadersOfALazyDocument(t *testing.T) {
	doc := sample.Large("0190d6f0-1c2d-7a00-8000-000000000001", 200<<10, true)
	want, err := parseEager(doc, true)
	if err != nil {
		t.Fatal(err)
	}
	wantBytes := mustMarshal(t, want)
	v, err := ParseReadOnly(doc)
	if err != nil {
		t.Fatal(err)
	}
	readers := []func() []byte{
		func() []byte { b, _ := v.Marshal(); return b },
		func() []byte { b, _ := Canonical(v); return b },
		func() []byte { _ = v.Doc(); return nil },
		func() []byte { _ = v.List(Analysis); return nil },
		func() []byte { _ = v.List(Parties); return nil },
		func() []byte { b, _ := ToVersion001(v).Marshal(); _ = ToVersion001(v).Doc(); return b },
		func() []byte { _ = v.UUID(); _ = Tags(v); _ = RoutingTags(v); return nil },
		func() []byte { _ = Validate(v); return nil }, // may decode a raw dialog
		func() []byte { b, _ := v.Clone().Marshal(); return b },
	}
	var wg sync.WaitGroup
	errs := make(chan string, len(readers)*4)
	for range 4 {
		for i, r := range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if b := r(); b != nil && i < 2 && !bytes.Equal(b, wantBytes) {
					errs <- fmt.Sprintf("reader %d encoded another document", i)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestSubmissionLeavesAnalysisRaw: the API's check of a posted vCon reads
// its parties, dialog and group, not the analysis a producer attached.
func TestSubmissionLeavesAnalysisRaw(t *testing.T) {
	v, err := Parse(sample.Large("0190d6f0-1c2d-7a00-8000-000000000001", 400<<10, true))
	if err != nil {
		t.Fatal(err)
	}
	if errs, _ := CheckSubmission(v); len(errs) > 0 {
		t.Fatal(errs)
	}
	AddDefaultArrays(v)
	if _, isRaw := objects(v.tree(), Analysis)[transcriptIndex(v)]["body"].(rawJSON); !isRaw {
		t.Fatal("CheckSubmission decoded the transcript body")
	}
}
