package pipeline

import (
	"bytes"

	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// bodyUnchanged reports whether the document the chain leaves is, byte for
// byte, the body it read: a chain whose links only read (a router, a
// filter, a webhook) or that changed nothing (a tag already there), on a
// body already in the encoding the worker writes. Its commit then writes
// no body: the rewrite would store the same bytes, and conserver's
// read-only chains write nothing either. A body that normalisation
// changes (legacy names, another key order or spacing) still encodes
// differently and is written as before. The TTL steps of the commit
// (extension while queued, expiry at the end of the road) do not need the
// write: SET KEEPTTL keeps the TTL, and the ones that change it are
// PEXPIREs of their own.
func bodyUnchanged(out *outcome) bool {
	return out.prev.Format != vconstore.FormatNone && bytes.Equal(out.body, out.prev.Data)
}
