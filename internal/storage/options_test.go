package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// testVCon builds a small normalised vCon; createdAt "" leaves it out.
func testVCon(t testing.TB, uuid, createdAt, subject string) *vcon.VCon {
	t.Helper()
	doc := map[string]any{
		"vcon":    "0.4.0",
		"uuid":    uuid,
		"parties": []any{map[string]any{"tel": "+15551234567"}},
		"amended": map[string]any{"uuid": "0190d6f0-0000-7000-8000-000000000000"},
		"x_unknown": map[string]any{
			"kept": json.Number("12345678901234567890"),
		},
	}
	if createdAt != "" {
		doc["created_at"] = createdAt
	}
	if subject != "" {
		doc["subject"] = subject
	}
	return vcon.FromDoc(doc)
}

// TestModuleOptionErrors is each storage module's table of refused
// options: the error names the storage, its module and every bad key, and
// never quotes a credential or a URL.
func TestModuleOptionErrors(t *testing.T) {
	pg := map[string]any{"database": "db", "user": "u", "password": "pw-s3cret", "host": "h", "port": int64(5432)}
	with := func(base map[string]any, kv ...any) map[string]any {
		out := map[string]any{}
		for k, v := range base {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	hook := map[string]any{"webhook-urls": []any{"https://hooks.example/x"}}
	s3 := map[string]any{"aws_bucket": "b"}
	sftp := map[string]any{"url": "sftp.example", "username": "u", "password": "pw-s3cret", "known_hosts": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMniNrGYD5ZHx4K05nczBG0BnteScV4XKc5r0+d6g/mq"}
	tests := map[string][]struct {
		name string
		opts map[string]any
		want []string // each must appear
	}{
		"storage.elasticsearch": {
			{"nothing set", nil, []string{`set option "url" (the cluster's http(s):// address) or "cloud_id"`}},
			{"url and cloud_id", map[string]any{"url": "https://es:9200", "cloud_id": "c:eA=="}, []string{`options "url" and "cloud_id" exclude each other`}},
			{"cloud_id not one", map[string]any{"cloud_id": "not base64!"}, []string{`option "cloud_id": want an Elastic Cloud id`}},
			{"url with credentials", map[string]any{"url": "https://elastic:pw-s3cret@es:9200"}, []string{`option "url": must not hold credentials`}},
			{"logins", map[string]any{"url": "https://es:9200", "api_key": "k-s3cret", "password": "pw-s3cret"}, []string{`options "api_key" and "username"/"password" exclude each other`}},
			{"password alone", map[string]any{"url": "https://es:9200", "password": "pw-s3cret"}, []string{`options "username" and "password" go together`}},
			{"tls", map[string]any{"url": "https://es:9200", "ca_certs": "/nonexistent/ca.pem", "verify_certs": "no"}, []string{
				`option "ca_certs": read /nonexistent/ca.pem: no such file or directory`,
				`option "verify_certs": want true or false (or 1 or 0), got "no"`,
			}},
			{"prefix", map[string]any{"url": "https://es:9200", "index_prefix": "Acme/"}, []string{`option "index_prefix": want lower-case letters, digits, -, _ and .`}},
		},
		"storage.file": {
			{"path empty", map[string]any{"path": ""}, []string{`option "path": must not be empty`}},
			{"size and modes", map[string]any{"max_file_size": int64(0), "file_permissions": "rwx", "compression": "maybe"}, []string{
				`option "compression": want true or false (or 1 or 0), got "maybe"`,
				`option "max_file_size": must be positive, got 0`,
				`option "file_permissions": want octal permissions such as "0644", got "rwx"`,
			}},
			{"size not a number", map[string]any{"max_file_size": "10MB"}, []string{`option "max_file_size": want a whole number, got "10MB"`}},
		},
		"storage.mongo": {
			{"nothing set", nil, []string{`option "url": required, missing: the server's mongodb:// URL`}},
			{"uri as its README shows", map[string]any{"uri": "mongodb://h/"}, []string{`option "url": required, missing (conserver reads "url"; the "uri" its README shows is not read)`}},
			{"url not mongodb", map[string]any{"url": "https://u:pw-s3cret@h/"}, []string{`option "url": want a mongodb:// or mongodb+srv:// URL`}},
			{"url not a connection string", map[string]any{"url": "mongodb://u:pw-s3cret@h:port/"}, []string{`option "url": not a MongoDB connection string`}},
			{"url unexpanded", map[string]any{"url": "${MONGO_URL_NOT_SET}"}, []string{`option "url": refers to ${MONGO_URL_NOT_SET}`}},
			{"names", map[string]any{"url": "mongodb://h/", "database": "a.b", "collection": "system.users"}, []string{
				`option "database": want a database name (at most 63 bytes, none of /\. "$*<>:|?), got "a.b"`,
				`option "collection": want a collection name (no "$", not starting with "system."), got "system.users"`,
			}},
			{"collection empty", map[string]any{"url": "mongodb://h/", "collection": " "}, []string{`option "collection": want a collection name`}},
		},
		"storage.postgres": {
			{"nothing set", nil, []string{`option "database": required, missing`, `option "user": required, missing`, `option "password": required, missing`, `option "host": required, missing`, `option "port": required, missing`}},
			{"bad port", with(pg, "port", "http"), []string{`option "port": want a TCP port number, got "http"`}},
			{"bad table", with(pg, "table_name", "a-b"), []string{`option "table_name": want letters, digits and _ (not starting with a digit, at most 63), got "a-b"`}},
			{"password of the wrong type", with(pg, "password", []any{"pw-s3cret"}), []string{`option "password": want a string, got a list`}},
		},
		"storage.redis_storage": {
			{"expires zero", map[string]any{"expires": int64(0)}, []string{`option "expires": must be a positive number of seconds, got 0`}},
			{"expires words", map[string]any{"expires": "a week", "prefix": int64(3)}, []string{`option "prefix": want a string, got 3`, `option "expires": want a whole number, got "a week"`}},
		},
		"storage.s3": {
			{"no bucket", nil, []string{`option "aws_bucket": required: the name of the bucket`}},
			{"bucket a number", map[string]any{"aws_bucket": int64(3)}, []string{`option "aws_bucket": want a string, got 3`}},
			{"half the keys", with(s3, "aws_access_key_id", "AKIA"), []string{`options "aws_access_key_id" and "aws_secret_access_key" go together`}},
			{"endpoint not a URL", with(s3, "endpoint_url", "minio:9000"), []string{`option "endpoint_url": want an absolute http:// or https:// URL`}},
			{"endpoint with credentials", with(s3, "endpoint_url", "http://u:pw-s3cret@minio:9000"), []string{`option "endpoint_url": must not hold credentials`}},
			{"secret unexpanded", with(s3, "aws_access_key_id", "AKIA", "aws_secret_access_key", "${S3_SECRET_NOT_SET}"), []string{`option "aws_secret_access_key": refers to ${S3_SECRET_NOT_SET}`}},
		},
		"storage.sftp": {
			{"nothing set", nil, []string{`option "url": required: the SFTP server's host name`, `option "username": required, missing`}},
			{"no password or key", with(sftp, "password", nil), []string{`set option "password", "private_key" or "key_file"`}},
			{"key twice", with(sftp, "key_file", "/k", "private_key", "pem-s3cret"), []string{`options "key_file" and "private_key" exclude each other`}},
			{"private key not a key", with(sftp, "private_key", "-----BEGIN s3cret"), []string{`option "private_key": holds no private key ssh can read`}},
			{"no host key", with(sftp, "known_hosts", nil), []string{`option "known_hosts": required: the server's public key`, "insecure_skip_host_key_check: true accepts any key"}},
			{"host key not a key", with(sftp, "known_hosts", []any{"sftp.example fingerprint"}), []string{`option "known_hosts": item 0, line 1: want a public key such as "ssh-ed25519 AAAA..."`}},
			{"known hosts revoked", with(sftp, "known_hosts", "@revoked * "+sftp["known_hosts"].(string)), []string{`option "known_hosts": item 0, line 1: @revoked entries are not supported`}},
			{"known hosts only comments", with(sftp, "known_hosts", "# sftp.example:22 SSH-2.0-OpenSSH\n"), []string{`option "known_hosts": holds no key`}},
			{"host key and insecure", with(sftp, "insecure_skip_host_key_check", true), []string{`options "known_hosts" and "insecure_skip_host_key_check" exclude each other`}},
			{"insecure not a boolean", with(sftp, "known_hosts", nil, "insecure_skip_host_key_check", "sure"), []string{`option "insecure_skip_host_key_check": want true or false (or 1 or 0), got "sure"`}},
			{"url a web address", with(sftp, "url", "https://sftp.example/x"), []string{`option "url": want a host name, or sftp://host[:port], got "https://sftp.example/x"`}},
			{"bad port", with(sftp, "port", int64(70000), "url", "sftp://h:0"), []string{`option "port": want a whole number from 1 to 65535, got 70000`, `option "url": want a host name, or sftp://host[:port]`}},
			{"file name parts", with(sftp, "filename", "a/b", "extension", ""), []string{`option "filename": want a file name part without / or \, got "a/b"`, `option "extension": must not be empty`}},
			{"key file missing", with(sftp, "key_file", "/nonexistent/id_ed25519"), []string{`option "key_file": read the private key: no such file or directory`}},
			{"password unexpanded", with(sftp, "password", "${SFTP_PASSWORD_NOT_SET}"), []string{`option "password": refers to ${SFTP_PASSWORD_NOT_SET}`}},
		},
		"storage.vcon_mcp": {
			{"base_url not a URL", map[string]any{"base_url": "vcon-mcp:3000"}, []string{`option "base_url": want an absolute http:// or https:// URL`}},
			{"key and timeout", map[string]any{"api_key": "${MCP_KEY_NOT_SET}", "timeout": "soon"}, []string{
				`option "api_key": refers to ${MCP_KEY_NOT_SET}`,
				`option "timeout": want a duration such as 30s or 30 (seconds), got "soon"`,
			}},
		},
		"storage.webhook": {
			{"no urls", nil, []string{`option "webhook-urls": required`}},
			{"every bad key", with(hook, "webhook-urls", []any{"https://a", "/b?token=s3cret"}, "timeout", "later", "headers", map[string]any{"A B": "pw-s3cret"}), []string{
				`option "webhook-urls": item 1: want an absolute http:// or https:// URL`,
				`option "headers": "A B" is not a valid header name`,
				`option "timeout": want a duration such as 30s or 30 (seconds), got "later"`,
			}},
		},
	}
	for _, module := range Known() {
		if _, ok := tests[module]; !ok {
			t.Errorf("%s has no option error cases", module)
		}
	}
	for module, cases := range tests {
		for _, tc := range cases {
			t.Run(module+"/"+tc.name, func(t *testing.T) {
				s, err := New(context.Background(), "bad", module, tc.opts, Deps{})
				if err == nil {
					if c, ok := s.(Closer); ok {
						_ = c.Close()
					}
					t.Fatalf("New accepted %v", tc.opts)
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, fmt.Sprintf("storage %q (%s): ", "bad", module)) {
					t.Errorf("error %q does not name the storage and its module", msg)
				}
				for _, w := range tc.want {
					if !strings.Contains(msg, w) {
						t.Errorf("error %q\ndoes not contain %q", msg, w)
					}
				}
				if strings.Contains(msg, "s3cret") {
					t.Errorf("error %q quotes a secret", msg)
				}
			})
		}
	}
}
