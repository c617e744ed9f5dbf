package vcon

// declaredDialogFields are the fields conserver's API model DialogEntry
// declares (api/api.py), with mimetype under the name conserver's read
// renames it to.
var declaredDialogFields = []string{"duration", "start", "parties", "url", "mediatype", "alg"}

// ConserverView returns the document as a conserver link reads it, for the
// links whose behaviour depends on its exact shape (links.jq_link runs its
// program over it, links.webhook posts it): filters and receivers written
// for conserver then see the same fields.
//
// conserver's API stores pydantic's dump of its Vcon model: every declared
// field is there, null when the producer left it out (subject, appended,
// each party's tel, each dialog's duration, start, parties, url, mimetype,
// alg), and created_at as Python's isoformat(). Its worker writes a vCon
// back after each link that changes it (VconRedis._enforce_spec_on_write,
// which Normalize mirrors) and a link reads it through
// normalize_legacy_fields, which renames appended to amended and mimetype
// to mediatype. The view is that document: Normalized, with the declared
// fields a producer left out filled with null and created_at in
// isoformat() when it parses. We store the document as sent (see
// CheckSubmission), so the view is made for the link, not kept.
//
// Two shapes of conserver's are not reproduced: a duration stays the
// number it was written as (conserver's dump makes 60 a float, 60.0: the
// same number to JSON readers and to jq), and the view is always the
// written one, where conserver shows a link the raw dump (the version as
// posted, empty group and redacted, object bodies) until some link has
// written the vCon. As with Normalized, the result shares v's values and
// is for reading.
func ConserverView(v *VCon) *VCon {
	if v.Secured() {
		return v // a link that reads it gets the document as it is
	}
	out := Normalized(v)
	// The view is decoded where it is filled in (the parties, the
	// dialog), the rest when a reader asks (jq_link's Doc): the webhook
	// only encodes it. The top level is filled in first: List may
	// replace it with a copy.
	d := out.tree()
	if x, ok := d["created_at"]; ok {
		if iso, typ, _ := pyDatetime(x); typ == "" {
			d["created_at"] = iso
		}
	}
	fillNull(d, "subject")
	// The dump's appended: null, renamed on read; Normalize drops a null
	// amended from what we store, conserver keeps it.
	fillNull(d, "amended")
	for _, p := range out.List(Parties) {
		fillNull(p, "tel")
	}
	for _, e := range out.List(Dialog) {
		for _, key := range declaredDialogFields {
			if key == "mediatype" {
				if _, legacy := e["mimetype"]; legacy {
					continue
				}
			}
			fillNull(e, key)
		}
	}
	return out
}

func fillNull(m map[string]any, key string) {
	if _, ok := m[key]; !ok {
		m[key] = nil
	}
}
