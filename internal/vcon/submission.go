package vcon

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// CheckSubmission is the one check of a vCon submitted through the API
// (POST /api/vcon, POST /api/vcon/external-ingress): it refuses what conserver's API refuses and accepts what it
// accepts. conserver's API validates its request body with the pydantic v2
// models Vcon, PartyEntry and DialogEntry of api/api.py, in pydantic's lax
// mode; CheckSubmission follows them field by field, with pydantic's error
// types and messages, and the loc of the value at fault.
//
// Where pydantic coerces a value instead of refusing it, conserver stores
// the coerced value; so does CheckSubmission, changing the document: a uuid in
// another accepted spelling becomes the canonical lower-case one, a
// created_at given as a Unix time (or a string our readers cannot parse)
// becomes conserver's isoformat() string, a numeric string duration a
// number, a dialog party index written as a string, an integral float or a
// boolean an integer. changed says whether it did. Everything else is kept
// as sent.
//
// A document conserver accepts can still be refused, for one reason: it
// must also be a vCon this project's workers process (Validate), so
// `amended` that is neither an object nor a list is refused (conserver's
// model does not declare it).
func CheckSubmission(v *VCon) (errs []FieldError, changed bool) {
	// The checks read into the parties, the dialog and the group; the
	// rest of a large vCon is not decoded for them.
	v.openArray(Parties)
	v.openArray(Dialog)
	c := submission{doc: v.openArray("group")}
	c.run()
	if len(c.errs) == 0 {
		c.errs = Validate(v)
	}
	return c.errs, c.changed
}

// AddDefaultArrays adds the parties, dialog, analysis and attachments a
// vCon leaves out, as empty lists: conserver's model defaults them to [],
// so what its API stores has them. It reports whether it added one.
func AddDefaultArrays(v *VCon) bool {
	doc := v.tree()
	added := false
	for _, key := range []string{Parties, Dialog, Analysis, Attachments} {
		if _, ok := doc[key]; !ok {
			doc[key] = []any{}
			added = true
		}
	}
	return added
}

type submission struct {
	doc     map[string]any
	errs    []FieldError
	changed bool
}

func (c *submission) add(typ, msg string, path ...any) {
	c.errs = append(c.errs, FieldError{Path: path, Msg: msg, Type: typ})
}

// Pydantic's messages, for the error types conserver's model produces.
const (
	msgMissing = "Field required"
	msgString  = "Input should be a valid string"
	msgList    = "Input should be a valid list"
	msgDict    = "Input should be a valid dictionary"
)

// run checks the fields in the order the Vcon model declares them, as
// pydantic reports them (api/api.py, class Vcon).
func (c *submission) run() {
	d := c.doc
	// vcon: str (required; "" is a string).
	switch x, ok := d["vcon"]; {
	case !ok:
		c.add(errMissing, msgMissing, "vcon")
	default:
		if _, ok := x.(string); !ok {
			c.add(errString, msgString, "vcon")
		}
	}
	// uuid: UUID (required).
	if x, ok := d["uuid"]; !ok {
		c.add(errMissing, msgMissing, "uuid")
	} else if canon, typ, msg := pyUUID(x); typ != "" {
		c.add(typ, msg, "uuid")
	} else if canon != x {
		d["uuid"] = canon
		c.changed = true
	}
	// created_at: datetime (required).
	if x, ok := d["created_at"]; !ok {
		c.add(errMissing, msgMissing, "created_at")
	} else if iso, typ, msg := pyDatetime(x); typ != "" {
		c.add(typ, msg, "created_at")
	} else if s, isString := x.(string); !isString || !readable(s) {
		// conserver stores created_at as isoformat() of what pydantic read;
		// we keep the string sent unless our own readers cannot read it.
		d["created_at"] = iso
		c.changed = true
	}
	// subject: Optional[str].
	c.optionalString(d, "subject")
	// redacted: dict = {} (null is refused); appended: Optional[dict].
	if x, ok := d["redacted"]; ok {
		if _, isDict := x.(map[string]any); !isDict {
			c.add(errDict, msgDict, "redacted")
		}
	}
	if x, ok := d["appended"]; ok && x != nil {
		if _, isDict := x.(map[string]any); !isDict {
			c.add(errDict, msgDict, "appended")
		}
	}
	// group: List[Dict]; parties: List[PartyEntry]; dialog:
	// List[DialogEntry]; analysis, attachments: List[Dict]. null is refused
	// for each.
	c.listOf(d, "group", nil)
	parties := c.listOf(d, Parties, c.party)
	dialog := c.listOf(d, Dialog, c.dialog)
	c.listOf(d, Analysis, nil)
	c.listOf(d, Attachments, nil)
	// Vcon.check_party_refs, a model validator: it runs only once every
	// field is valid. conserver reports the first bad index at loc
	// ["body"]; we report each at its own loc, with conserver's message.
	if len(c.errs) > 0 {
		return
	}
	for i, it := range dialog {
		refs, _ := it.(map[string]any)["parties"].([]any)
		for k, ref := range refs {
			n := ref.(json.Number)
			if idx, err := strconv.ParseInt(n.String(), 10, 64); err != nil || idx < 0 || idx >= int64(len(parties)) {
				c.add(errValue, fmt.Sprintf("Value error, dialog[%d].parties contains index %s which is out of range (parties has %d entries)", i, n, len(parties)),
					Dialog, i, "parties", k)
			}
		}
	}
}

func (c *submission) optionalString(m map[string]any, key string, path ...any) (string, bool) {
	x, ok := m[key]
	if !ok || x == nil {
		return "", false
	}
	s, ok := x.(string)
	if !ok {
		c.add(errString, msgString, append(path, key)...)
	}
	return s, ok
}

// listOf checks a List[...] field: absent is the default [], anything but a
// list (null included) is refused, and each item must be an object. item,
// when given, checks an object item further.
func (c *submission) listOf(d map[string]any, key string, item func(i int, m map[string]any)) []any {
	x, ok := d[key]
	if !ok {
		return nil
	}
	if _, raw := x.(*rawArray); raw && item == nil {
		return nil // Parse found every entry an object
	}
	items, ok := x.([]any)
	if !ok {
		c.add(errList, msgList, key)
		return nil
	}
	for i, it := range items {
		m, ok := it.(map[string]any)
		switch {
		case !ok && item == nil:
			c.add(errDict, msgDict, key, i)
		case !ok:
			model := map[string]string{Parties: "PartyEntry", Dialog: "DialogEntry"}[key]
			c.add("model_type", "Input should be a valid dictionary or instance of "+model, key, i)
		case item != nil:
			item(i, m)
		}
	}
	return items
}

// party checks PartyEntry: tel: Optional[str] matching _TEL_RE.
func (c *submission) party(i int, p map[string]any) {
	if tel, ok := c.optionalString(p, "tel", Parties, i); ok && !telRE.MatchString(tel) {
		c.add(errValue, "Value error, tel has invalid format: "+pyRepr(tel), Parties, i, "tel")
	}
}

// dialog checks DialogEntry, in its field order: duration, start,
// parties, url, mimetype, alg.
func (c *submission) dialog(i int, e map[string]any) {
	if x, ok := e["duration"]; ok && x != nil {
		f, num, typ, msg := pyFloat(x)
		switch {
		case typ != "":
			c.add(typ, msg, Dialog, i, "duration")
		case f < 0:
			c.add(errValue, "Value error, duration must be >= 0", Dialog, i, "duration")
		case math.IsInf(f, 0) || math.IsNaN(f):
			// pydantic accepts inf and nan; JSON cannot carry them.
			c.add("finite_number", "Input should be a finite number", Dialog, i, "duration")
		case num != x:
			e["duration"] = num
			c.changed = true
		}
	}
	c.optionalString(e, "start", Dialog, i)
	if x, ok := e["parties"]; ok && x != nil {
		refs, ok := x.([]any)
		if !ok {
			c.add(errList, msgList, Dialog, i, "parties")
		}
		for k, ref := range refs {
			n, typ, msg := pyInt(ref)
			switch {
			case typ != "":
				c.add(typ, msg, Dialog, i, "parties", k)
			case n != ref:
				refs[k] = n
				c.changed = true
			}
		}
	}
	if url, ok := c.optionalString(e, "url", Dialog, i); ok && !urlRE.MatchString(url) {
		c.add(errValue, "Value error, url does not look like a valid URL: "+pyRepr(url), Dialog, i, "url")
	}
	if mt, ok := c.optionalString(e, "mimetype", Dialog, i); ok && !mimeRE.MatchString(mt) {
		c.add(errValue, "Value error, mimetype has invalid format: "+pyRepr(mt), Dialog, i, "mimetype")
	}
	if alg, ok := c.optionalString(e, "alg", Dialog, i); ok && !validAlg[alg] {
		c.add(errValue, "Value error, alg "+pyRepr(alg)+" is not a recognised algorithm", Dialog, i, "alg")
	}
}

// conserver's patterns (api/api.py _URL_RE, _MIME_RE, _TEL_RE), used with
// Python's re.match: anchored at the start; "$" also matches before a final
// newline; \d and \s are Unicode classes.
const (
	pyDigit = `\p{Nd}`
	pySpace = `\t\n\v\f\r \x{1c}-\x{1f}\x{85}\p{Z}`
)

var (
	urlRE  = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+\-.]*://.+`)
	mimeRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9!#$&\-^_]*/[a-zA-Z0-9][a-zA-Z0-9!#$&\-^_.+]*\n?$`)
	telRE  = regexp.MustCompile(`^[+` + pyDigit + `(][` + pyDigit + pySpace + `\-().+xX#*]{4,}\n?$`)
)

// validAlg is conserver's _VALID_ALG.
var validAlg = map[string]bool{
	"SHA-256": true, "SHA-384": true, "SHA-512": true,
	"HS256": true, "HS384": true, "HS512": true,
	"RS256": true, "RS384": true, "RS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"PS256": true, "PS384": true, "PS512": true,
}

// pyRepr quotes a string as Python's repr() does in conserver's messages.
func pyRepr(s string) string {
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		return `"` + s + `"`
	}
	r := strconv.Quote(s)
	r = strings.ReplaceAll(r[1:len(r)-1], `\"`, `"`)
	return "'" + strings.ReplaceAll(r, "'", `\'`) + "'"
}

// pyUUID reads a UUID as pydantic does: a string in the hyphenated form,
// the simple 32-digit form, braced ({hyphenated}) or urn:uuid:hyphenated,
// any case. It returns the canonical form, or pydantic's error.
func pyUUID(x any) (canon, typ, msg string) {
	s, ok := x.(string)
	if !ok {
		return "", "uuid_type", "UUID input should be a string, bytes or UUID object"
	}
	bad := func(why string) (string, string, string) {
		return "", errUUID, "Input should be a valid UUID, " + why
	}
	body, offset := s, 0
	switch {
	case strings.HasPrefix(s, "urn:uuid:"):
		body, offset = s[len("urn:uuid:"):], len("urn:uuid:")
	case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") && len(s) >= 2:
		body, offset = s[1:len(s)-1], 1
	}
	hex := func(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }
	for i, r := range body {
		if r != '-' && (r > 0x7f || !hex(byte(r))) {
			return bad(fmt.Sprintf("invalid character: found `%c` at %d", r, offset+i+1))
		}
	}
	if !strings.Contains(body, "-") {
		if offset != 0 {
			return bad("invalid group count: expected 5, found 1")
		}
		if len(body) != 32 {
			return bad(fmt.Sprintf("invalid length: expected length 32 for simple format, found %d", len(body)))
		}
		body = body[:8] + "-" + body[8:12] + "-" + body[12:16] + "-" + body[16:20] + "-" + body[20:]
	}
	groups := strings.Split(body, "-")
	if len(groups) != 5 {
		return bad(fmt.Sprintf("invalid group count: expected 5, found %d", len(groups)))
	}
	for g, want := range []int{8, 4, 4, 4, 12} {
		if len(groups[g]) != want {
			return bad(fmt.Sprintf("invalid group length in group %d: expected %d, found %d", g, want, len(groups[g])))
		}
	}
	return strings.ToLower(body), "", ""
}

// pyFloat reads a float as pydantic's lax mode does: a JSON number, a
// boolean, or a string holding a number (surrounding whitespace, "_"
// between digits, inf and nan allowed). num is the value as a JSON
// number, the input itself when it was one.
func pyFloat(x any) (f float64, num any, typ, msg string) {
	switch t := x.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(t.String(), 64)
		if err != nil && !isRangeErr(err) {
			return 0, nil, "float_parsing", "Input should be a valid number, unable to parse string as a number"
		}
		return f, t, "", ""
	case bool:
		if t {
			return 1, json.Number("1"), "", ""
		}
		return 0, json.Number("0"), "", ""
	case string:
		s := strings.TrimSpace(t)
		f, err := strconv.ParseFloat(s, 64)
		if (err != nil && !isRangeErr(err)) || strings.HasPrefix(strings.TrimLeft(s, "+-"), "0x") || strings.HasPrefix(strings.TrimLeft(s, "+-"), "0X") {
			return 0, nil, "float_parsing", "Input should be a valid number, unable to parse string as a number"
		}
		return f, json.Number(strconv.FormatFloat(f, 'g', -1, 64)), "", ""
	default:
		return 0, nil, "float_type", "Input should be a valid number"
	}
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// pyInt reads an int as pydantic's lax mode does: a JSON integer (of any
// size), a float without a fractional part, a boolean, or a string holding
// an integer (surrounding whitespace, a sign, "_" between digits, and a
// ".0" fraction allowed).
func pyInt(x any) (n json.Number, typ, msg string) {
	parsing := func() (json.Number, string, string) {
		return "", "int_parsing", "Input should be a valid integer, unable to parse string as an integer"
	}
	switch t := x.(type) {
	case bool:
		if t {
			return "1", "", ""
		}
		return "0", "", ""
	case string:
		s := strings.TrimSpace(t)
		if i := strings.IndexByte(s, '.'); i >= 0 && strings.Trim(s[i+1:], "0") == "" {
			s = s[:i]
		}
		digits := strings.TrimPrefix(strings.TrimPrefix(s, "+"), "-")
		if digits == "" || digits[0] == '_' || digits[len(digits)-1] == '_' || strings.Contains(digits, "__") {
			return parsing()
		}
		for _, r := range digits {
			if r != '_' && (r < '0' || r > '9') {
				return parsing()
			}
		}
		digits = strings.TrimLeft(strings.ReplaceAll(digits, "_", ""), "0")
		if digits == "" {
			return "0", "", ""
		}
		if strings.HasPrefix(s, "-") {
			digits = "-" + digits
		}
		return json.Number(digits), "", ""
	case json.Number:
		s := t.String()
		if !strings.ContainsAny(s, ".eE") {
			return t, "", ""
		}
		f, err := strconv.ParseFloat(s, 64)
		switch {
		case err != nil || math.IsInf(f, 0):
			return "", "finite_number", "Input should be a finite number"
		case f != math.Trunc(f):
			return "", "int_from_float", "Input should be a valid integer, got a number with a fractional part"
		case math.Abs(f) >= 1<<63:
			return "", "int_parsing_size", "Unable to parse input string as an integer, exceeded maximum size"
		}
		return json.Number(strconv.FormatInt(int64(f), 10)), "", ""
	default:
		return "", errInt, "Input should be a valid integer"
	}
}

// readable says whether the rest of this project reads s as a timestamp.
func readable(s string) bool {
	_, ok := ParseTime(s)
	return ok
}

// Unix times pydantic converts: seconds, or milliseconds above
// msThreshold; within Python's datetime range.
const (
	msThreshold   = 2e10
	minUnixSecond = -62135596800 // 0001-01-01T00:00:00Z
	maxUnixSecond = 253402300799 // 9999-12-31T23:59:59Z
)

// pyDatetime reads a datetime as pydantic's lax mode does (its speedate
// parser): an RFC 3339-like string (date, "T", "t", "_" or " ", HH:MM,
// optional :SS and a "." or "," fraction, optional Z or ±HH[:]MM), a date
// alone (midnight), or a Unix time as a number or a numeric string. It
// returns the value as Python's isoformat() writes it, which is what
// conserver stores, or pydantic's error.
func pyDatetime(x any) (iso, typ, msg string) {
	const fromDate = "datetime_from_date_parsing"
	switch t := x.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(t.String(), 64)
		if err != nil && !isRangeErr(err) {
			return "", "datetime_type", "Input should be a valid datetime"
		}
		iso, why := unixISO(f)
		if why != "" {
			return "", "datetime_parsing", "Input should be a valid datetime, " + why
		}
		return iso, "", ""
	case string:
		if numericString.MatchString(t) {
			f, _ := strconv.ParseFloat(t, 64)
			iso, why := unixISO(f)
			if why != "" {
				return "", fromDate, "Input should be a valid datetime or date, " + why
			}
			return iso, "", ""
		}
		dt, why := parseSpeedate(t)
		if why != "" {
			return "", fromDate, "Input should be a valid datetime or date, " + why
		}
		if dt.year == 0 {
			return "", "datetime_parsing", "Input should be a valid datetime, year 0 is out of range"
		}
		return dt.iso(), "", ""
	default:
		return "", "datetime_type", "Input should be a valid datetime"
	}
}

var numericString = regexp.MustCompile(`^[+-]?[0-9]+(\.[0-9]*)?$`)

func unixISO(f float64) (string, string) {
	var unit int64 = 1e6 // microseconds per unit of f: seconds
	if math.Abs(f) > msThreshold {
		unit = 1e3 // milliseconds
	}
	switch sec := f / float64(1e6/unit); {
	case math.IsNaN(f):
		return "", "input is not a valid timestamp"
	case sec >= maxUnixSecond+1:
		return "", "dates after 9999 are not supported as unix timestamps"
	case sec < minUnixSecond:
		return "", "dates before 0000 are not supported as unix timestamps"
	}
	whole := math.Trunc(f)
	micros := int64(whole)*unit + int64(math.Round((f-whole)*float64(unit)))
	secs, micro := floorDiv(micros, 1e6)
	days, rem := floorDiv(secs, 86400)
	y, m, d := civil(days)
	off := 0
	return pyDT{year: y, month: m, day: d, hour: int(rem / 3600), minute: int(rem % 3600 / 60), second: int(rem % 60),
		micro: int(micro), offset: &off}.iso(), ""
}

func floorDiv(a, b int64) (int64, int64) {
	q, r := a/b, a%b
	if r < 0 {
		q, r = q-1, r+b
	}
	return q, r
}

// civil converts days since 1970-01-01 to a proleptic Gregorian date
// (Howard Hinnant's algorithm).
func civil(z int64) (year, month, day int) {
	z += 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era = (z - 146096) / 146097
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return int(y), int(m), int(d)
}

// pyDT is a datetime as Python holds it; offset nil is a naive datetime.
type pyDT struct {
	year, month, day, hour, minute, second, micro int
	offset                                        *int // minutes east of UTC
}

// iso is Python's datetime.isoformat().
func (t pyDT) iso() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%04d-%02d-%02dT%02d:%02d:%02d", t.year, t.month, t.day, t.hour, t.minute, t.second)
	if t.micro != 0 {
		fmt.Fprintf(&b, ".%06d", t.micro)
	}
	if t.offset != nil {
		o, sign := *t.offset, '+'
		if o < 0 {
			o, sign = -o, '-'
		}
		fmt.Fprintf(&b, "%c%02d:%02d", sign, o/60, o%60)
	}
	return b.String()
}

// parseSpeedate parses a date or datetime string as speedate does, and
// gives pydantic's reason when it cannot: a string that is not a datetime
// is reported as the date parser sees it.
func parseSpeedate(s string) (pyDT, string) {
	var t pyDT
	if why := parseDate(s, &t); why != "" {
		return t, why
	}
	if len(s) == 10 {
		return t, ""
	}
	const extra = "unexpected extra characters at the end of the input"
	if !parseTimeOfDay(s[10:], &t) {
		return t, extra
	}
	return t, ""
}

func parseDate(s string, t *pyDT) string {
	if len(s) < 10 {
		return "input is too short"
	}
	num := func(from, to int) (int, bool) {
		n := 0
		for i := from; i < to; i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, false
			}
			n = n*10 + int(s[i]-'0')
		}
		return n, true
	}
	var ok bool
	if t.year, ok = num(0, 4); !ok {
		return "invalid character in year"
	}
	if s[4] != '-' {
		return "invalid date separator, expected `-`"
	}
	if t.month, ok = num(5, 7); !ok {
		return "invalid character in month"
	}
	if s[7] != '-' {
		return "invalid date separator, expected `-`"
	}
	if t.day, ok = num(8, 10); !ok {
		return "invalid character in day"
	}
	if t.month < 1 || t.month > 12 {
		return "month value is outside expected range of 1-12"
	}
	days := []int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[t.month-1]
	if t.month == 2 && t.year%4 == 0 && (t.year%100 != 0 || t.year%400 == 0) {
		days = 29
	}
	if t.day < 1 || t.day > days {
		return "day value is outside expected range"
	}
	return ""
}

// parseTimeOfDay reads what follows the date: a separator, HH:MM, optional
// :SS with a fraction, optional offset, and nothing after.
func parseTimeOfDay(s string, t *pyDT) bool {
	two := func(i int) (int, bool) {
		if i+2 > len(s) || s[i] < '0' || s[i] > '9' || s[i+1] < '0' || s[i+1] > '9' {
			return 0, false
		}
		return int(s[i]-'0')*10 + int(s[i+1]-'0'), true
	}
	if len(s) < 6 || !strings.ContainsRune("Tt_ ", rune(s[0])) || s[3] != ':' {
		return false
	}
	var ok bool
	if t.hour, ok = two(1); !ok || t.hour > 23 {
		return false
	}
	if t.minute, ok = two(4); !ok || t.minute > 59 {
		return false
	}
	i := 6
	if i < len(s) && s[i] == ':' {
		if t.second, ok = two(i + 1); !ok || t.second > 59 {
			return false
		}
		i += 3
		if i < len(s) && (s[i] == '.' || s[i] == ',') {
			j := i + 1
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			if j == i+1 {
				return false
			}
			frac := (s[i+1:j] + "000000")[:6]
			t.micro, _ = strconv.Atoi(frac)
			i = j
		}
	}
	if i == len(s) {
		return true
	}
	switch s[i] {
	case 'Z', 'z':
		zero := 0
		t.offset = &zero
		return i+1 == len(s)
	case '+', '-':
		h, ok := two(i + 1)
		if !ok || h > 23 {
			return false
		}
		j := i + 3
		if j < len(s) && s[j] == ':' {
			j++
		}
		m, ok := two(j)
		if !ok || m > 59 || j+2 != len(s) {
			return false
		}
		off := h*60 + m
		if s[i] == '-' {
			off = -off
		}
		t.offset = &off
		return true
	}
	return false
}
