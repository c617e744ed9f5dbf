package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3 is a private S3-compatible server (versitygw with its posix backend)
// on a free loopback port, storing buckets as directories in a temporary
// directory. It is a real S3 implementation, built once per machine by
// hack/tools.sh, so signing, error codes and keys behave as on a real
// service. It is stopped when the test ends.
type S3 struct {
	// Endpoint is the server's http:// URL; clients must use path-style
	// addressing.
	Endpoint  string
	AccessKey string
	SecretKey string
	Region    string

	t      testing.TB
	dir    string
	proc   process
	mu     sync.Mutex
	client *s3.Client
}

const s3ServerName = "versitygw"

const s3Fix = "run `hack/tools.sh s3server` (make test does)"

// S3ServerPath finds the S3 server in bin/ of the repository (found by
// walking up from the working directory to go.mod).
func S3ServerPath() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, "bin", s3ServerName)
	if !isExecutable(p) {
		return "", fmt.Errorf("S3 test server not found at %s: %s", p, s3Fix)
	}
	return p, nil
}

// StartS3 starts the server with fresh random credentials and waits until
// it answers its health check. Stop runs at t.Cleanup.
func StartS3(t testing.TB) *S3 {
	t.Helper()
	bin, err := S3ServerPath()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{"data", "meta"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatalf("create S3 server directory: %v", err)
		}
	}
	port := FreePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s := &S3{
		Endpoint:  "http://" + addr,
		AccessKey: "testenv" + randomHex(t, 6),
		SecretKey: randomHex(t, 20),
		Region:    "us-east-1",
		t:         t,
		dir:       dir,
	}
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatalf("create S3 server log: %v", err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	// Credentials go through the environment, not argv, so that they do
	// not show in ps.
	cmd := exec.Command(bin,
		"--port", addr,
		"--region", s.Region,
		"--health", "/health",
		"posix",
		// A sidecar directory keeps metadata off xattrs, which tmpfs
		// and some CI filesystems do not offer.
		"--sidecar", filepath.Join(dir, "meta"),
		filepath.Join(dir, "data"),
	)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+s.AccessKey, "ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	s.proc = process{t: t, name: "S3 server on " + s.Endpoint, logPath: filepath.Join(dir, "server.log")}
	t.Cleanup(s.Stop)
	hc := &http.Client{Timeout: time.Second}
	s.proc.start(cmd, 30*time.Second, 20*time.Millisecond, func() error {
		resp, err := hc.Get(s.Endpoint + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("health check answered %s", resp.Status)
		}
		return nil
	})
	return s
}

// Stop stops the server and waits for it; stopping twice does nothing.
func (s *S3) Stop() { s.proc.stop(syscall.SIGTERM, 10*time.Second) }

// Client is an S3 client with the server's root credentials.
func (s *S3) Client() *s3.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		s.client = s3.New(s3.Options{
			Region:                     s.Region,
			BaseEndpoint:               aws.String(s.Endpoint),
			UsePathStyle:               true,
			Credentials:                credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
			RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
			ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		})
	}
	return s.client
}

// CreateBucket creates a bucket with a fresh name and returns the name.
func (s *S3) CreateBucket() string {
	s.t.Helper()
	name := "test-" + randomHex(s.t, 6)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		s.t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

// Keys lists every key in bucket, for tests that check the layout.
func (s *S3) Keys(bucket string) []string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			s.t.Fatalf("list bucket %s: %v", bucket, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}
