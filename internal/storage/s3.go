package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// storage.s3 writes each vCon as one object, laid out as conserver does so
// that buckets it filled stay readable and vice versa:
//
//	[s3_path/]YYYY/MM/DD/{uuid}.vcon   the document (application/json)
//	[s3_path/]lookup/{uuid}.txt        "YYYY/MM/DD", the pointer Get and Delete follow
//
// The date is created_at's calendar date as written (conserver formats the
// parsed timestamp without converting it), or today in UTC when the vCon
// has no readable created_at.
func init() { Register("storage.s3", newS3) }

const s3DefaultRegion = "us-east-1"

type s3Storage struct {
	client *s3.Client
	bucket string
	prefix string // s3_path without surrounding slashes; "" for none
	secret string // only to scrub it from error text, never printed
	now    func() time.Time
}

func newS3(ctx context.Context, _ string, raw map[string]any, _ Deps) (Storage, error) {
	o := options.New(raw)
	bucket := o.Name("aws_bucket", "")
	if bucket == "" && o.Problems() == 0 { // a wrong type is reported already
		o.Failf("aws_bucket", "required: the name of the bucket to write vCons to")
	}
	keyID := o.Secret("aws_access_key_id")
	secret := o.Secret("aws_secret_access_key")
	if (keyID == "") != (secret == "") {
		o.Errorf(`options "aws_access_key_id" and "aws_secret_access_key" go together: set both, or neither to use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the pod's web identity`)
	}
	region := o.Name("aws_region", "")
	endpoint := o.URL("endpoint_url", "")
	if u, err := url.Parse(endpoint); endpoint != "" && err == nil && u.User != nil {
		o.Failf("endpoint_url", "must not hold credentials; use aws_access_key_id and aws_secret_access_key")
	}
	prefix := o.Name("s3_path", "")
	if err := o.Err(); err != nil {
		return nil, err
	}

	// Credentials come from the options or the environment only: shared
	// config files (~/.aws) are not read, so what runs is what the Chain says.
	loadOpts := []func(*config.LoadOptions) error{
		config.WithSharedConfigFiles([]string{}),
		config.WithSharedCredentialsFiles([]string{}),
	}
	if keyID != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(keyID, secret, "")))
	}
	if region != "" {
		loadOpts = append(loadOpts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %v", err)
	}
	if cfg.Region == "" {
		cfg.Region = s3DefaultRegion
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			// S3-compatible servers rarely have a wildcard DNS name per
			// bucket, and many reject the SDK's streaming checksums.
			o.UsePathStyle = true
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
	})
	return &s3Storage{
		client: client,
		bucket: bucket,
		prefix: strings.Trim(prefix, "/"),
		secret: secret,
		now:    time.Now,
	}, nil
}

func (s *s3Storage) key(parts ...string) string {
	if s.prefix != "" {
		parts = append([]string{s.prefix}, parts...)
	}
	return strings.Join(parts, "/")
}

func (s *s3Storage) objectKey(date, uuid string) string { return s.key(date, uuid+".vcon") }
func (s *s3Storage) lookupKey(uuid string) string       { return s.key("lookup", uuid+".txt") }

// s3Date is what a lookup pointer holds; anything else is not followed, so a
// corrupt pointer cannot send Get or Delete to an arbitrary key.
var s3Date = regexp.MustCompile(`^[0-9]{4}/[0-9]{2}/[0-9]{2}$`)

// Save writes the document, then the pointer, so a pointer never names a
// missing object. Saving again overwrites the same two keys.
func (s *s3Storage) Save(ctx context.Context, v *vcon.VCon) error {
	uuid := v.UUID()
	if err := s3CheckUUID(uuid); err != nil {
		return Permanent(err)
	}
	var date string
	if t, ok := vcon.CreatedAt(v); ok {
		date = t.Format("2006/01/02")
	} else {
		// Without created_at the date would be the day of the save; a
		// retry after midnight must still land on the first key.
		prev, err := s.lookup(ctx, uuid)
		switch {
		case err == nil:
			date = prev
		case errors.Is(err, ErrNotFound):
			date = s.now().UTC().Format("2006/01/02")
		default:
			return err
		}
	}
	body, err := egressShape(v).Marshal()
	if err != nil {
		return Permanent(fmt.Errorf("s3: encode vcon %s: %w", uuid, err))
	}
	if err := s.put(ctx, s.objectKey(date, uuid), body, "application/json"); err != nil {
		return err
	}
	return s.put(ctx, s.lookupKey(uuid), []byte(date), "text/plain; charset=utf-8")
}

// Get follows the lookup pointer; a vCon without one is ErrNotFound, as in
// conserver.
func (s *s3Storage) Get(ctx context.Context, uuid string) ([]byte, error) {
	if err := s3CheckUUID(uuid); err != nil {
		return nil, err
	}
	date, err := s.lookup(ctx, uuid)
	if err != nil {
		return nil, err
	}
	return s.get(ctx, s.objectKey(date, uuid))
}

// Delete removes the document and then its pointer; deleting a vCon that is
// not there succeeds (the API answers DELETE with 204 either way).
func (s *s3Storage) Delete(ctx context.Context, uuid string) error {
	if err := s3CheckUUID(uuid); err != nil {
		return err
	}
	date, err := s.lookup(ctx, uuid)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, key := range []string{s.objectKey(date, uuid), s.lookupKey(uuid)} {
		if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(key)}); err != nil {
			return s.fail("delete", key, err)
		}
	}
	return nil
}

func (s *s3Storage) lookup(ctx context.Context, uuid string) (string, error) {
	key := s.lookupKey(uuid)
	data, err := s.get(ctx, key)
	if err != nil {
		return "", err
	}
	date := strings.TrimSpace(string(data))
	if !s3Date.MatchString(date) {
		return "", fmt.Errorf("s3: s3://%s/%s does not hold a YYYY/MM/DD date", s.bucket, key)
	}
	return date, nil
}

func (s *s3Storage) put(ctx context.Context, key string, body []byte, contentType string) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String(contentType),
	})
	if err != nil {
		return s.fail("put", key, err)
	}
	return nil
}

func (s *s3Storage) get(ctx context.Context, key string) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(key)})
	if err != nil {
		if s3IsNotFound(err) {
			return nil, ErrNotFound
		}
		return nil, s.fail("get", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, s.fail("read", key, err)
	}
	return data, nil
}

func s3IsNotFound(err error) bool {
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return true
	}
	var api smithy.APIError
	return errors.As(err, &api) && (api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NotFound")
}

// s3Error is an S3 failure whose text has the secret key scrubbed out. The
// SDK never sends the secret, but servers echo request details back, and
// error text ends up in logs and dead-letter reasons.
type s3Error struct {
	msg string
	err error
}

func (e *s3Error) Error() string { return e.msg }
func (e *s3Error) Unwrap() error { return e.err }

func (s *s3Storage) fail(op, key string, err error) error {
	msg := fmt.Sprintf("s3: %s s3://%s/%s: %v", op, s.bucket, key, err)
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		// XAdminUserNotFound is versitygw's answer to an unknown key id.
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken", "XAdminUserNotFound":
			msg += " (check aws_access_key_id and aws_secret_access_key)"
		case "NoSuchBucket":
			msg += " (check aws_bucket; the bucket must exist)"
		}
	}
	if s.secret != "" {
		msg = strings.ReplaceAll(msg, s.secret, "[redacted]")
	}
	if s3Refused(err) {
		return Permanent(&s3Error{msg: msg, err: err})
	}
	return &s3Error{msg: msg, err: err}
}

// s3Retryable are the error codes S3 sends with a 4xx status for a
// condition that passes: a slow upload, clock skew the SDK corrects,
// credentials it refreshes, a conflicting operation still running.
var s3Retryable = map[string]bool{
	"RequestTimeout":       true,
	"RequestTimeTooSkewed": true,
	"ExpiredToken":         true,
	"TokenRefreshRequired": true,
	"OperationAborted":     true,
}

// s3Refused reports whether the server refused the request in a way a
// retry meets again: a 4xx answer (bad credentials, no such bucket, an
// object too large) other than the retryable ones. A failure without an
// answer (the server is down) is not.
func s3Refused(err error) bool {
	var resp interface{ HTTPStatusCode() int }
	if !errors.As(err, &resp) || !permanentStatus(resp.HTTPStatusCode()) {
		return false
	}
	var api smithy.APIError
	return !errors.As(err, &api) || !s3Retryable[api.ErrorCode()]
}

// s3CheckUUID refuses a uuid that would escape its key: the uuid is part
// of the object name.
func s3CheckUUID(uuid string) error {
	if uuid == "" {
		return errors.New("s3: vcon has no uuid")
	}
	if strings.ContainsAny(uuid, "/\\") || uuid == "." || uuid == ".." || len(uuid) > 200 {
		return fmt.Errorf("s3: uuid %q cannot be part of an object key", options.Truncate(uuid, 64))
	}
	return nil
}
