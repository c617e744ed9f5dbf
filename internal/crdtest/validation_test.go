package crdtest

import (
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	vconv1alpha1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/queue"
)

// TestServerRejectsBadManifests sends manifests a user could plausibly write
// and checks that the API server refuses each with a message naming the
// field and saying what is wrong.
func TestServerRejectsBadManifests(t *testing.T) {
	ns := newNamespace(t)
	cases := []struct {
		name     string
		manifest string
		// want are fragments of the API server's answer, usually the field
		// path and our message.
		want []string
	}{
		{
			name: "minReplicas above maxReplicas",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {minReplicas: 5, maxReplicas: 2}}`,
			want: []string{"spec.workers", "workers.minReplicas must not be greater than workers.maxReplicas"},
		},
		{
			name: "follower feeding a list the chain does not read",
			manifest: `
kind: Chain
spec: {ingressLists: [in], followers: [{name: up, url: "https://up.example.com/api", egressList: out, ingressList: other}]}`,
			want: []string{"spec: Invalid value", "a follower's ingressList must be one of the ingressLists of this chain"},
		},
		{
			name: "follower URL with credentials",
			manifest: `
kind: Chain
spec: {ingressLists: [in], followers: [{name: up, url: "https://user:pw@up.example.com/api", egressList: out}]}`,
			want: []string{"spec.followers[0].url", "without credentials: put the token in authTokenSecretRef"},
		},
		{
			name: "follower URL without a scheme",
			manifest: `
kind: Chain
spec: {ingressLists: [in], followers: [{name: up, url: "up.example.com", egressList: out}]}`,
			want: []string{"spec.followers[0].url", "url must be the http(s) base URL of the conserver API to follow"},
		},
		{
			name: "follower polling all the time",
			manifest: `
kind: Chain
spec: {ingressLists: [in], followers: [{name: up, url: "https://up", egressList: out, pullingInterval: 0s}]}`,
			want: []string{"spec.followers[0].pullingInterval", "pullingInterval must be a positive duration with a unit"},
		},
		{
			name: "follower limit out of range",
			manifest: `
kind: Chain
spec: {ingressLists: [in], followers: [{name: up, url: "https://up", egressList: out, fetchVconLimit: 20000}]}`,
			want: []string{"spec.followers[0].fetchVconLimit", "less than or equal to 10000"},
		},
		{
			name: "two followers with one name",
			manifest: `
kind: Chain
spec: {ingressLists: [in], followers: [{name: up, url: "https://a", egressList: out}, {name: up, url: "https://b", egressList: out}]}`,
			want: []string{"spec.followers[1]", "Duplicate value"},
		},
		{
			name: "follower egress list with a space",
			manifest: `
kind: Chain
spec: {ingressLists: [in], followers: [{name: up, url: "https://a", egressList: "o ut"}]}`,
			want: []string{"spec.followers[0].egressList", "a list name cannot contain spaces"},
		},
		{
			name: "a Link limit of zero",
			manifest: `
kind: Link
spec: {module: links.analyze, limits: {requestsPerMinute: 0}}`,
			want: []string{"spec.limits.requestsPerMinute", "should be greater than or equal to 1"},
		},
		{
			name: "empty Link limits",
			manifest: `
kind: Link
spec: {module: links.analyze, limits: {}}`,
			want: []string{"spec.limits", "should have at least 1 properties"},
		},
		{
			name: "minReplicas above the default maxReplicas",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {minReplicas: 20}}`,
			want: []string{"workers.minReplicas must not be greater than workers.maxReplicas (which is 10 when not set)"},
		},
		{
			name: "maxReplicas zero",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {maxReplicas: 0}}`,
			want: []string{"spec.workers.maxReplicas", "should be greater than or equal to 1"},
		},
		{
			name: "storageFailure not one of its values",
			manifest: `
kind: Chain
spec: {ingressLists: [in], storageFailure: dead_letter_storage}`,
			want: []string{"spec.storageFailure", `supported values: "DeadLetterVcon", "DeadLetterStorage"`},
		},
		{
			name: "no ingress list",
			manifest: `
kind: Chain
spec: {egressLists: [out]}`,
			want: []string{"spec.ingressLists: Required value"},
		},
		{
			name: "empty ingress lists",
			manifest: `
kind: Chain
spec: {ingressLists: []}`,
			want: []string{"spec.ingressLists", "ingressLists must name at least one Redis list"},
		},
		{
			name: "ingress list named twice",
			manifest: `
kind: Chain
spec: {ingressLists: [calls, calls]}`,
			want: []string{"spec.ingressLists[1]", `Duplicate value: "calls"`},
		},
		{
			name: "empty ingress list name",
			manifest: `
kind: Chain
spec: {ingressLists: [""]}`,
			want: []string{"spec.ingressLists[0]", "a list name cannot be empty"},
		},
		{
			name: "space in an ingress list name",
			manifest: `
kind: Chain
spec: {ingressLists: ["new calls"]}`,
			want: []string{"spec.ingressLists[0]", "a list name cannot contain spaces, tabs or line breaks"},
		},
		{
			name: "tab in an egress list name",
			manifest: `
kind: Chain
spec: {ingressLists: [in], egressLists: ["out\tlist"]}`,
			want: []string{"spec.egressLists[0]", "a list name cannot contain spaces, tabs or line breaks"},
		},
		{
			name: "egress list equal to an ingress list",
			manifest: `
kind: Chain
spec: {ingressLists: [a, b], egressLists: [done, b]}`,
			want: []string{"egress list b is also an ingress list of this chain"},
		},
		{
			name: "redis url and urlSecretRef both set",
			manifest: `
kind: Chain
spec:
  ingressLists: [in]
  redis: {url: "redis://redis:6379", urlSecretRef: {name: redis, key: url}}`,
			want: []string{"spec.redis", "set redis.url or redis.urlSecretRef, not both"},
		},
		{
			name: "redis url that is not a Redis URL",
			manifest: `
kind: Chain
spec: {ingressLists: [in], redis: {url: "http://redis:6379"}}`,
			want: []string{"spec.redis.url", "redis.url must be a Redis URL"},
		},
		{
			name: "chain link name in upper case",
			manifest: `
kind: Chain
spec: {ingressLists: [in], links: [Tag]}`,
			want: []string{"spec.links[0]", "links must be names of Link objects"},
		},
		{
			name: "negative concurrency",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {concurrency: -1}}`,
			want: []string{"spec.workers.concurrency", "should be greater than or equal to 1"},
		},
		{
			name: "zero concurrency",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {concurrency: 0}}`,
			want: []string{"spec.workers.concurrency", "should be greater than or equal to 1"},
		},
		{
			name: "timeout in words",
			manifest: `
kind: Chain
spec: {ingressLists: [in], timeout: ten seconds}`,
			want: []string{"spec.timeout", "timeout must be a duration with a unit, such as 30s"},
		},
		{
			name: "timeout without a unit",
			manifest: `
kind: Chain
spec: {ingressLists: [in], timeout: "5"}`,
			want: []string{"spec.timeout", "timeout must be a duration with a unit"},
		},
		{
			name: "scaleDownDelay in words",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {scaleDownDelay: 2 minutes}}`,
			want: []string{"spec.workers.scaleDownDelay", "scaleDownDelay must be a duration with a unit"},
		},
		{
			name: "activationQueueDepth negative",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {activationQueueDepth: -1}}`,
			want: []string{"spec.workers.activationQueueDepth", "should be greater than or equal to 0"},
		},
		{
			name: "activationDelay in words",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {activationDelay: an hour}}`,
			want: []string{"spec.workers.activationDelay", "activationDelay must be a duration with a unit"},
		},
		{
			name: "schedule with a six-field cron",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {schedules: [{start: "0 0 9 * * *", end: "0 17 * * *", timeZone: UTC, minReplicas: 1, maxReplicas: 5}]}}`,
			want: []string{"spec.workers.schedules[0].start", "start must be a cron expression of five fields"},
		},
		{
			name: "schedule with a descriptor",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {schedules: [{start: "0 9 * * *", end: "@daily", timeZone: UTC, minReplicas: 1, maxReplicas: 5}]}}`,
			want: []string{"spec.workers.schedules[0].end", "end must be a cron expression of five fields"},
		},
		{
			name: "schedule with the time zone in the cron",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {schedules: [{start: "CRON_TZ=UTC 0 9 * * *", end: "0 17 * * *", timeZone: UTC, minReplicas: 1, maxReplicas: 5}]}}`,
			want: []string{"spec.workers.schedules[0].start", "no seconds, @descriptor or CRON_TZ"},
		},
		{
			name: "schedule without a time zone",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {schedules: [{start: "0 9 * * *", end: "0 17 * * *", minReplicas: 1, maxReplicas: 5}]}}`,
			want: []string{"spec.workers.schedules[0].timeZone: Required value"},
		},
		{
			name: "schedule with an empty time zone",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {schedules: [{start: "0 9 * * *", end: "0 17 * * *", timeZone: "", minReplicas: 1, maxReplicas: 5}]}}`,
			want: []string{"spec.workers.schedules[0].timeZone", "at least 1 chars long"},
		},
		{
			name: "schedule with a time zone that is an offset",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {schedules: [{start: "0 9 * * *", end: "0 17 * * *", timeZone: "UTC+02:00", minReplicas: 1, maxReplicas: 5}]}}`,
			want: []string{"spec.workers.schedules[0].timeZone", "timeZone must be an IANA time zone name"},
		},
		{
			name: "schedule with minReplicas above maxReplicas",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {schedules: [{start: "0 9 * * *", end: "0 17 * * *", timeZone: UTC, minReplicas: 6, maxReplicas: 5}]}}`,
			want: []string{"spec.workers.schedules[0]", "a schedule's maxReplicas must be at least its minReplicas"},
		},
		{
			name: "link with a module and an http step",
			manifest: `
kind: Link
spec: {module: links.tag, http: {url: "http://step:8080/"}}`,
			want: []string{"a Link runs in exactly one way: set one of module, http or container"},
		},
		{
			name: "link with no way to run",
			manifest: `
kind: Link
spec: {env: [{name: TOKEN, secretKeyRef: {name: s, key: k}}]}`,
			want: []string{"a Link runs in exactly one way: set one of module, http or container"},
		},
		{
			name: "link with options but no module",
			manifest: `
kind: Link
spec: {http: {url: "http://step:8080/"}, options: {tags: [a]}}`,
			want: []string{"options are only for module links"},
		},
		{
			name: "link module without the links. prefix",
			manifest: `
kind: Link
spec: {module: tag}`,
			want: []string{"spec.module", "module must be a link module name: links. followed by lower-case letters, digits or _, e.g. links.tag"},
		},
		{
			name: "link module in upper case",
			manifest: `
kind: Link
spec: {module: links.Tag}`,
			want: []string{"spec.module", "module must be a link module name"},
		},
		{
			name: "storage module as a link",
			manifest: `
kind: Link
spec: {module: storage.postgres}`,
			want: []string{"spec.module", "storage modules do not run as Links: create a Storage"},
		},
		{
			name: "http step URL without a scheme",
			manifest: `
kind: Link
spec: {http: {url: "sentiment.steps.svc:8080/analyze"}}`,
			want: []string{"spec.http.url", "http.url must be an absolute http:// or https:// URL"},
		},
		{
			name: "http step timeout without a unit",
			manifest: `
kind: Link
spec: {http: {url: "http://step:8080/", timeout: "30"}}`,
			want: []string{"spec.http.timeout", "http.timeout must be a duration with a unit"},
		},
		{
			name: "container step on port 0",
			manifest: `
kind: Link
spec: {container: {image: "example.com/step:1", port: 0}}`,
			want: []string{"spec.container.port", "should be greater than or equal to 1"},
		},
		{
			name: "container step path without a leading slash",
			manifest: `
kind: Link
spec: {container: {image: "example.com/step:1", port: 8080, path: analyze}}`,
			want: []string{"spec.container.path", "container.path must start with /"},
		},
		{
			name: "env name starting with a digit",
			manifest: `
kind: Link
spec: {module: links.tag, env: [{name: 1PASSWORD, secretKeyRef: {name: s, key: k}}]}`,
			want: []string{"spec.env[0].name", "an env name is letters, digits and _, not starting with a digit"},
		},
		{
			name: "pod label selecting the workers",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {podLabels: {team: a, app.kubernetes.io/name: mine}}}`,
			want: []string{"spec.workers.podLabels", "podLabels cannot set app.kubernetes.io/name: app.kubernetes.io/name, instance, component, managed-by and vcon.dev/ labels belong to the operator"},
		},
		{
			name: "pod label in the operator's domain",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {podLabels: {vcon.dev/chain: other}}}`,
			want: []string{"spec.workers.podLabels", "podLabels cannot set vcon.dev/chain"},
		},
		{
			name: "pod annotation overriding the config hash",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {podAnnotations: {vcon.dev/config-hash: x}}}`,
			want: []string{"spec.workers.podAnnotations", "podAnnotations cannot set vcon.dev/config-hash: vcon.dev/ annotations belong to the operator"},
		},
		{
			name: "pod annotation loosening AppArmor",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {podAnnotations: {container.apparmor.security.beta.kubernetes.io/worker: unconfined}}}`,
			want: []string{"spec.workers.podAnnotations", "podAnnotations cannot set container.apparmor.security.beta.kubernetes.io/worker", "which a Chain cannot loosen"},
		},
		{
			name: "pod annotation loosening seccomp",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {podAnnotations: {seccomp.security.alpha.kubernetes.io/pod: unconfined}}}`,
			want: []string{"spec.workers.podAnnotations", "podAnnotations cannot set seccomp.security.alpha.kubernetes.io/pod"},
		},
		{
			name: "worker env overriding REDIS_URL",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {env: [{name: REDIS_URL, value: "redis://elsewhere:6379"}]}}`,
			want: []string{"spec.workers.env[0].name", "env REDIS_URL is set by the operator", "set spec.redis"},
		},
		{
			name: "worker env in a step's names",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {env: [{name: VCON_LINK6_OPENAI_TOKEN, value: x}]}}`,
			want: []string{"spec.workers.env[0].name", "env VCON_LINK6_OPENAI_TOKEN is set by the operator"},
		},
		{
			name: "worker env overriding the queued retention",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {env: [{name: VCON_QUEUED_RETENTION, value: "1"}]}}`,
			want: []string{"spec.workers.env[0].name", "env VCON_QUEUED_RETENTION is set by the operator"},
		},
		{
			name: "worker env with a value and a valueFrom",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {env: [{name: A, value: x, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]}}`,
			want: []string{"spec.workers.env[0]", "an env variable has a value or a valueFrom, not both and not neither"},
		},
		{
			name: "worker env from two places",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {env: [{name: A, valueFrom: {fieldRef: {fieldPath: metadata.name}, secretKeyRef: {name: s, key: k}}}]}}`,
			want: []string{"spec.workers.env[0].valueFrom", "valueFrom takes exactly one of secretKeyRef, configMapKeyRef, fieldRef or resourceFieldRef"},
		},
		{
			name: "worker env from a file",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {env: [{name: A, valueFrom: {fileKeyRef: {volumeName: user-data, path: env, key: A}}}]}}`,
			want: []string{"spec.workers.env[0].valueFrom", "valueFrom takes exactly one of"},
		},
		{
			name: "worker envFrom with the operator's prefix",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {envFrom: [{prefix: VCON_STORAGE2_S3_, secretRef: {name: s}}]}}`,
			want: []string{"spec.workers.envFrom[0].prefix", "envFrom prefix is in the operator's names"},
		},
		{
			name: "worker envFrom with two sources",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {envFrom: [{configMapRef: {name: c}, secretRef: {name: s}}]}}`,
			want: []string{"spec.workers.envFrom[0]", "envFrom takes exactly one of configMapRef or secretRef"},
		},
		{
			name: "service account name in upper case",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {serviceAccountName: Uploader}}`,
			want: []string{"spec.workers.serviceAccountName", "serviceAccountName must be the name of a ServiceAccount"},
		},
		{
			name: "disruption budget with both bounds",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {podDisruptionBudget: {minAvailable: 1, maxUnavailable: 1}}}`,
			want: []string{"spec.workers.podDisruptionBudget", "podDisruptionBudget takes exactly one of minAvailable or maxUnavailable"},
		},
		{
			name: "disruption budget with neither bound",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {podDisruptionBudget: {}}}`,
			want: []string{"spec.workers.podDisruptionBudget", "podDisruptionBudget takes exactly one of minAvailable or maxUnavailable"},
		},
		{
			name: "disruption budget in words",
			manifest: `
kind: Chain
spec: {ingressLists: [in], workers: {podDisruptionBudget: {maxUnavailable: half}}}`,
			want: []string{"spec.workers.podDisruptionBudget.maxUnavailable", "maxUnavailable is a number of pods or a percentage"},
		},
		{
			name: "storage module without the storage. prefix",
			manifest: `
kind: Storage
spec: {module: postgres}`,
			want: []string{"spec.module", "module must be a storage module name: storage. followed by"},
		},
		{
			name: "link module as a storage",
			manifest: `
kind: Storage
spec: {module: links.webhook}`,
			want: []string{"spec.module", "link modules do not run as Storages: create a Link"},
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			obj := object(t, "apiVersion: vcon.dev/v1alpha1\n"+strings.TrimSpace(tc.manifest))
			obj.SetNamespace(ns)
			obj.SetName(fmt.Sprintf("bad-%d", i))
			err := kube.Client.Create(ctx, obj)
			if err == nil {
				_ = kube.Client.Delete(ctx, obj)
				t.Fatalf("the API server accepted it; want a rejection saying %q", tc.want)
			}
			t.Log(err)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not say %q:\n%v", w, err)
				}
			}
			// Schema errors that stop the CEL rules make the server add a
			// generic sentence; a user should see only what is wrong.
			if strings.Contains(err.Error(), "failed rule") {
				t.Errorf("a rule has no message of its own:\n%v", err)
			}
		})
	}
}

// TestServerAcceptsValidVariants covers forms a strict rule could wrongly
// refuse, and reads each back through the Go types: a value the schema
// accepts but the operator cannot decode would break its watch of every
// object of that kind.
func TestServerAcceptsValidVariants(t *testing.T) {
	ns := newNamespace(t)
	cases := []struct {
		name     string
		manifest string
	}{
		{"redis sentinel URL", `
kind: Chain
spec: {ingressLists: [in], redis: {url: "redis+sentinel://s1:26379,s2:26379/mymaster/0"}}`},
		{"redis cluster URL over TLS", `
kind: Chain
spec: {ingressLists: [in], redis: {url: "rediss+cluster://r1:6379,r2:6379"}}`},
		{"redis unix socket", `
kind: Chain
spec: {ingressLists: [in], redis: {url: "unix:///var/run/redis/redis.sock"}}`},
		{"redis URL from a Secret", `
kind: Chain
spec: {ingressLists: [in], redis: {urlSecretRef: {name: redis, key: url}}}`},
		{"compound and fractional durations", `
kind: Chain
spec: {ingressLists: [in], timeout: 1h30m, workers: {scaleDownDelay: 1.5s}}`},
		{"list names with Redis punctuation", `
kind: Chain
spec: {ingressLists: ["{calls}:in", "team/a.b"], egressLists: ["{calls}:out"]}`},
		{"activation and business-hours schedules", `
kind: Chain
spec:
  ingressLists: [in]
  workers:
    activationQueueDepth: 50
    activationDelay: 2m
    schedules:
    - {start: "0 9 * * 1-5", end: "0 17 * * 1-5", timeZone: Europe/Berlin, minReplicas: 2, maxReplicas: 20}
    - {start: "*/15 22 * * MON-FRI", end: "0 6 ? * *", timeZone: America/Argentina/Buenos_Aires, minReplicas: 0, maxReplicas: 2}
    - {start: "0 0 1 JAN *", end: "0 0 2 1 *", timeZone: Etc/GMT+5, minReplicas: 0, maxReplicas: 1}`},
		{"followers", `
kind: Chain
spec:
  ingressLists: [in, priority]
  followers:
  - {name: upstream, url: "https://upstream.example.com/api", egressList: processed}
  - name: eu
    url: "http://10.0.0.7:8000"
    egressList: "{eu}:out"
    ingressList: priority
    authTokenSecretRef: {name: eu-upstream, key: token}
    pullingInterval: 2.5s
    fetchVconLimit: 10000`},
		{"a vendor's limits on a Link", `
kind: Link
spec: {module: links.analyze, limits: {requestsPerMinute: 600, tokensPerMinute: 150000, maxConcurrent: 20}}`},
		{"minReplicas equal to maxReplicas", `
kind: Chain
spec: {ingressLists: [in], workers: {minReplicas: 3, maxReplicas: 3}}`},
		{"a link used twice in one chain", `
kind: Chain
spec: {ingressLists: [in], links: [tag, filter, tag]}`},
		{"http step with secret headers", `
kind: Link
spec:
  http:
    url: "https://sentiment.steps.svc:8443/analyze?v=2"
    timeout: 10s
    headers: [{name: X-Api-Key, valueFrom: {name: step, key: key}}]`},
		{"container step", `
kind: Link
spec: {container: {image: "example.com/step:1", port: 8080, path: /analyze, timeout: 2m}}`},
		{"module link with secret env", `
kind: Link
spec:
  module: links.webhook
  options: {webhook-urls: ["https://example.com"]}
  env: [{name: _TOKEN2, secretKeyRef: {name: s, key: k}}]
  envFrom: [{name: more-secrets}]`},
		{"worker pod placement and identity", `
kind: Chain
spec:
  ingressLists: [in]
  workers:
    nodeSelector: {kubernetes.io/arch: arm64}
    tolerations: [{key: dedicated, operator: Equal, value: vcon, effect: NoSchedule}]
    affinity:
      nodeAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          nodeSelectorTerms: [{matchExpressions: [{key: topology.kubernetes.io/zone, operator: In, values: [a, b]}]}]
    topologySpreadConstraints:
    - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {vcon.dev/chain: good}}}
    priorityClassName: vcon-high
    serviceAccountName: vcon-uploader
    imagePullSecrets: [{name: registry}]
    podLabels: {team: calls, app.kubernetes.io/part-of: calls}
    podAnnotations: {cluster-autoscaler.kubernetes.io/safe-to-evict: "false"}
    env:
    - {name: AWS_REGION, value: eu-west-1}
    - {name: VCON_STORAGE_FALLBACK_ENABLED, value: "false"}
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory}}}
    - {name: KEY, valueFrom: {secretKeyRef: {name: s, key: k}}}
    - {name: OTEL_EXPORTER_OTLP_ENDPOINT, valueFrom: {configMapKeyRef: {name: otel, key: endpoint}}}
    envFrom: [{configMapRef: {name: settings}}, {prefix: EXTRA_, secretRef: {name: more}}]
    podDisruptionBudget: {maxUnavailable: 25%}`},
		{"disruption budget as a number", `
kind: Chain
spec: {ingressLists: [in], workers: {podDisruptionBudget: {minAvailable: 1}}}`},
		{"conserver's handling of failed storage writes", `
kind: Chain
spec: {ingressLists: [in], storages: [pg], storageFailure: DeadLetterStorage}`},
		{"storage with a digit in the module name", `
kind: Storage
spec: {module: storage.s3, options: {bucket: vcons}}`},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			obj := object(t, "apiVersion: vcon.dev/v1alpha1\n"+strings.TrimSpace(tc.manifest))
			obj.SetNamespace(ns)
			obj.SetName(fmt.Sprintf("good-%d", i))
			if err := kube.Client.Create(ctx, obj); err != nil {
				t.Fatalf("the API server refused it: %v", err)
			}
			key := clientKey(obj)
			var err error
			switch obj.GetKind() {
			case "Chain":
				err = kube.Client.Get(ctx, key, &vconv1alpha1.Chain{})
			case "Link":
				err = kube.Client.Get(ctx, key, &vconv1alpha1.Link{})
			case "Storage":
				err = kube.Client.Get(ctx, key, &vconv1alpha1.Storage{})
			default:
				t.Fatalf("unexpected kind %q", obj.GetKind())
			}
			if err != nil {
				t.Fatalf("stored, but it does not decode into the Go type: %v", err)
			}
		})
	}
}

// TestServerRejectsReservedListNames: every queue name the worker and the
// API refuse (queue.ListNameConflict) is refused by the CRD too, as an
// ingress and as an egress list, so the CEL rule cannot drift from the Go
// list.
func TestServerRejectsReservedListNames(t *testing.T) {
	ns := newNamespace(t)
	names := []string{queue.IndexSortedSet}
	for _, p := range queue.ReservedPrefixes {
		names = append(names, p+"x")
	}
	i := 0
	for _, name := range names {
		if queue.ListNameConflict(name) == "" {
			t.Fatalf("%q is not reserved in Go", name)
		}
		for _, field := range []string{"ingressLists", "egressLists"} {
			t.Run(field+"/"+name, func(t *testing.T) {
				ctx := testContext(t)
				spec := fmt.Sprintf("{ingressLists: [%q]}", name)
				if field == "egressLists" {
					spec = fmt.Sprintf("{ingressLists: [in], egressLists: [%q]}", name)
				}
				obj := object(t, "apiVersion: vcon.dev/v1alpha1\nkind: Chain\nspec: "+spec)
				obj.SetNamespace(ns)
				i++
				obj.SetName(fmt.Sprintf("reserved-%d", i))
				err := kube.Client.Create(ctx, obj)
				if err == nil {
					_ = kube.Client.Delete(ctx, obj)
					t.Fatalf("a Chain with %s [%s] was accepted", field, name)
				}
				if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec."+field+"[0]") || !strings.Contains(err.Error(), "this name holds vCon data, not a queue") {
					t.Fatalf("want the reserved-name message on spec.%s[0], got %v", field, err)
				}
			})
		}
	}
}
