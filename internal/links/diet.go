package links

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("links.diet", newDiet) }

// mediaPostTimeout bounds one upload to post_media_to_url; conserver sets
// none, and a hung media server would otherwise hold the vCon forever.
const mediaPostTimeout = 60 * time.Second

// diet slims a vCon down: dialog bodies, analysis, some attachments, and
// system prompts that could be replayed into an LLM.
type diet struct {
	deps                Deps
	removeDialogBody    bool
	postMediaTo         *httpx.Target
	removeAnalysis      bool
	removeAttachments   []string
	removeSystemPrompts bool
}

func newDiet(_ string, raw map[string]any, deps Deps) (Link, error) {
	o := options.New(raw)
	d := &diet{
		deps:                deps,
		removeDialogBody:    o.Bool("remove_dialog_body", false),
		removeAnalysis:      o.Bool("remove_analysis", false),
		removeAttachments:   o.Strings("remove_attachment_types"),
		removeSystemPrompts: o.Bool("remove_system_prompts", false),
	}
	if postTo := o.URL("post_media_to_url", ""); postTo != "" {
		t, _ := httpx.ParseTarget(postTo) // the reader checked it
		d.postMediaTo = &t
	}
	if o.Name("s3_bucket", "") != "" {
		o.Failf("s3_bucket", "uploading dialog bodies to S3 is not supported by this link; use storage.s3 to keep whole vCons in S3, or post_media_to_url")
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *diet) Run(ctx context.Context, v *vcon.VCon) (Result, error) {
	if d.removeDialogBody {
		for i, dialog := range v.List(vcon.Dialog) {
			if err := d.dropBody(ctx, v.UUID(), i, dialog); err != nil {
				return Result{}, err
			}
		}
	}
	if d.removeAnalysis {
		delete(v.Doc(), vcon.Analysis)
	}
	if len(d.removeAttachments) > 0 {
		if items, ok := v.Doc()[vcon.Attachments].([]any); ok {
			v.Doc()[vcon.Attachments] = slices.DeleteFunc(items, func(it any) bool {
				a, ok := it.(map[string]any)
				return ok && d.attachmentDropped(a)
			})
		}
	}
	if d.removeSystemPrompts {
		removeSystemPrompts(v.Doc())
	}
	return Continue, nil
}

// dropBody empties a dialog's body the way conserver does (body ""), or,
// with post_media_to_url, uploads it first and points the dialog at the
// stored copy through the vCon "url" field. A failed upload is an error:
// conserver drops the body anyway and the media is lost for good.
func (d *diet) dropBody(ctx context.Context, uuid string, index int, dialog map[string]any) error {
	body, ok := dialog["body"]
	if !ok {
		return nil
	}
	if d.postMediaTo == nil || body == nil || body == "" {
		dialog["body"] = ""
		return nil
	}
	dialogID, _ := dialog["id"].(string)
	mediaURL, err := d.postMedia(ctx, map[string]any{"content": body, "vcon_uuid": uuid, "dialog_id": dialogID})
	if err != nil {
		return fmt.Errorf("diet: dialog %d: post media to %s: %w", index, d.postMediaTo.Host, err)
	}
	dialog["url"] = mediaURL
	delete(dialog, "body")
	delete(dialog, "encoding")
	return nil
}

// postMedia sends conserver's payload {content, vcon_uuid, dialog_id}, so
// existing media endpoints keep working, and returns the "url" they answer.
func (d *diet) postMedia(ctx context.Context, payload map[string]any) (string, error) {
	data, err := json.Marshal(payload)
	if err != nil {
		return "", fmt.Errorf("encode payload: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, mediaPostTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.postMediaTo.URL, bytes.NewReader(data))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.deps.HTTP.Do(req)
	if err != nil {
		return "", httpx.StripURL(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	var answer struct {
		URL string `json:"url"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&answer); err != nil || answer.URL == "" {
		return "", errors.New(`answer has no "url" field, body kept`)
	}
	return answer.URL, nil
}

// attachmentDropped matches remove_attachment_types against every field
// that has named an attachment's kind: purpose and its legacy type, and the
// media type under its current and old names (conserver reads only the
// never-written mime_type, so its option removes nothing).
func (d *diet) attachmentDropped(a map[string]any) bool {
	for _, key := range []string{"purpose", "type", "mediatype", "mimetype", "mime_type"} {
		if s, ok := a[key].(string); ok && slices.Contains(d.removeAttachments, s) {
			return true
		}
	}
	return false
}

// removeSystemPrompts deletes every "system_prompt" key, also inside bodies
// kept as JSON strings (normalisation turns object bodies into strings, which
// conserver's walk does not look into).
func removeSystemPrompts(x any) bool {
	changed := false
	switch t := x.(type) {
	case map[string]any:
		if _, ok := t["system_prompt"]; ok {
			delete(t, "system_prompt")
			changed = true
		}
		for k, e := range t {
			if removeSystemPrompts(e) {
				changed = true
			}
			if s, ok := e.(string); ok && k == "body" && t["encoding"] == "json" {
				if cleaned, ok := withoutSystemPrompts(s); ok {
					t[k] = cleaned
					changed = true
				}
			}
		}
	case []any:
		for _, e := range t {
			if removeSystemPrompts(e) {
				changed = true
			}
		}
	}
	return changed
}

func withoutSystemPrompts(body string) (string, bool) {
	// Decoding a body to look for the key costs several times its size
	// (a transcript's words become maps); a body whose text cannot hold
	// the key, written plainly or with escaped ASCII letters, has none.
	if !strings.Contains(body, "system_prompt") && !strings.Contains(body, `\u00`) {
		return "", false
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	var decoded any
	if dec.Decode(&decoded) != nil || !removeSystemPrompts(decoded) {
		return "", false
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if enc.Encode(decoded) != nil {
		return "", false
	}
	return string(bytes.TrimRight(buf.Bytes(), "\n")), true
}
