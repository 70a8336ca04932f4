// Checks of the Helm chart helm/ledgerq, without a cluster:
//
//   - helm lint --strict, with the defaults and with each case's values;
//   - helm template over a matrix of values; every rendered object is validated
//     against the Kubernetes, KEDA and Prometheus Operator schemas
//     (kubernetes-models), and strictly: a field the schema does not know (a
//     typo the API server would silently drop) fails too;
//   - assertions on what matters (probes, grace period, autoscaling target,
//     security context, secrets), see assertRelease();
//   - values that must be refused (typos, URLs in values) are refused;
//   - NOTES.txt renders.
//
// usage: node check-chart.mjs --helm PATH --chart DIR --dockerfile FILE
// Prints one "PASS ..." or "FAIL ..." line per check; exits 1 if any failed.

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseAllDocuments, parse as parseYaml } from "yaml";

// ---------------------------------------------------------------- arguments

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]]);
    return acc;
  }, []),
);
for (const need of ["helm", "chart", "dockerfile"]) {
  if (!args[need]) {
    console.error(`usage: node check-chart.mjs --helm PATH --chart DIR --dockerfile FILE (missing --${need})`);
    process.exit(2);
  }
}
const HELM = args.helm;
const CHART = path.resolve(args.chart);
const RELEASE = "ledgerq";
const NAMESPACE = "payments";

let failures = 0;
function report(ok, what, detail) {
  if (ok) {
    console.log(`PASS ${what}`);
  } else {
    failures++;
    console.log(`FAIL ${what}`);
    for (const line of [].concat(detail ?? [])) console.log(`     ${line}`);
  }
}

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), "ledgerq-chart-"));
process.on("exit", () => fs.rmSync(TMP, { recursive: true, force: true }));

function writeValues(name, values) {
  const file = path.join(TMP, `${name}.json`); // JSON is YAML: helm reads it as is
  fs.writeFileSync(file, JSON.stringify(values, null, 2));
  return file;
}

function helm(argv) {
  const r = spawnSync(HELM, argv, { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function render(name, values, extra = []) {
  return helm(["template", RELEASE, CHART, "--namespace", NAMESPACE, "-f", writeValues(name, values), ...extra]);
}

// ---------------------------------------------------------------- values

const DEFAULTS = parseYaml(fs.readFileSync(path.join(CHART, "values.yaml"), "utf8"));

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
// Helm's merge: maps merge key by key, anything else (lists too) replaces.
function merge(base, over) {
  if (!isObject(base) || !isObject(over)) return over === undefined ? base : over;
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = k in base ? merge(base[k], v) : v;
  return out;
}

// A URL with credentials in it: scheme://user:password@…
const CREDENTIAL_URL = /[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/\s@]*:[^/\s@]*@/;
function* strings(value, where = "") {
  if (typeof value === "string") yield [where, value];
  else if (Array.isArray(value)) for (const [i, v] of value.entries()) yield* strings(v, `${where}[${i}]`);
  else if (isObject(value)) for (const [k, v] of Object.entries(value)) yield* strings(v, where ? `${where}.${k}` : k);
}

// ---------------------------------------------------------------- schemas

const MODELS = {
  v1: "kubernetes-models/v1",
  "apps/v1": "kubernetes-models/apps/v1",
  "batch/v1": "kubernetes-models/batch/v1",
  "policy/v1": "kubernetes-models/policy/v1",
  "networking.k8s.io/v1": "kubernetes-models/networking.k8s.io/v1",
  "autoscaling/v2": "kubernetes-models/autoscaling/v2",
  "keda.sh/v1alpha1": "@kubernetes-models/keda/keda.sh/v1alpha1",
  "monitoring.coreos.com/v1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
};

// The schemas' compiled validators read each property they know. Validating
// through a Proxy that records those reads shows which fields of the object no
// schema knows: ajv's Kubernetes schemas allow additional properties, the API
// server drops them silently, and a typo'd field would be lost without a word.
// A map (labels, …) is enumerated by its validator: all its keys count as known.
function tracked(value, where, records) {
  if (value === null || typeof value !== "object") return value;
  const rec = { where, keys: Array.isArray(value) ? [] : Object.keys(value), read: new Set(), enumerated: false };
  records.push(rec);
  const children = new Map();
  return new Proxy(value, {
    get(target, key, receiver) {
      const v = Reflect.get(target, key, receiver);
      if (typeof key !== "string") return v;
      rec.read.add(key);
      if (v === null || typeof v !== "object") return v;
      if (!children.has(key)) children.set(key, tracked(v, `${where}/${key}`, records));
      return children.get(key);
    },
    has(target, key) {
      if (typeof key === "string") rec.read.add(key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      rec.enumerated = true;
      return Reflect.ownKeys(target);
    },
  });
}

async function validateObject(obj) {
  const errors = [];
  const module = MODELS[obj.apiVersion];
  if (!module) return [`no schema for apiVersion ${obj.apiVersion}`];
  const models = await import(module);
  const Model = models[obj.kind];
  if (!Model) return [`no schema for ${obj.apiVersion} ${obj.kind}`];
  const records = [];
  try {
    Model.prototype.validate.call(tracked(structuredClone(obj), "", records));
  } catch (e) {
    errors.push(String(e.message ?? e).split("\n").slice(0, 6).join("; "));
  }
  for (const r of records) {
    if (r.enumerated) continue;
    for (const k of r.keys) if (!r.read.has(k)) errors.push(`unknown field ${r.where}/${k}`);
  }
  return errors;
}

// ---------------------------------------------------------------- assertions

const SANITY_KINDS = new Set([
  "ServiceAccount", "Service", "Deployment", "Job", "PodDisruptionBudget", "NetworkPolicy",
  "ScaledObject", "TriggerAuthentication", "HorizontalPodAutoscaler", "ServiceMonitor", "PrometheusRule",
]);

function dockerfileUser(file) {
  const lines = fs.readFileSync(file, "utf8").split("\n");
  let user = null;
  for (const line of lines) {
    const m = /^\s*USER\s+(\S+)/i.exec(line);
    if (m) user = m[1];
  }
  return user;
}
const IMAGE_USER = dockerfileUser(args.dockerfile);

function envOf(container) {
  const env = {};
  for (const e of container.env ?? []) env[e.name] = e;
  return env;
}

function matches(selector, labels) {
  return Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);
}

// Every pod template of the release: the Deployment's and the Job's.
function podTemplates(objects) {
  return objects
    .filter((o) => o.kind === "Deployment" || o.kind === "Job")
    .map((o) => ({ owner: `${o.kind}/${o.metadata.name}`, template: o.spec.template }));
}

// The assertions on one rendered release. Returns a list of failures; `v` are
// the values it was rendered with (defaults merged with the case's).
function assertRelease(objects, v) {
  const fail = [];
  const check = (cond, msg) => {
    if (!cond) fail.push(msg);
  };
  const byKind = (kind) => objects.filter((o) => o.kind === kind);

  for (const o of objects) check(SANITY_KINDS.has(o.kind), `unexpected kind ${o.kind}`);

  // --- the worker Deployment and its settings
  const deployments = byKind("Deployment");
  check(deployments.length === 1, `expected one Deployment, got ${deployments.length}`);
  const dep = deployments[0];
  if (!dep) return fail;
  const pod = dep.spec.template.spec;
  const worker = pod.containers.find((c) => c.name === "worker");
  check(worker, "the Deployment has no container named worker");
  if (!worker) return fail;
  const env = envOf(worker);
  const setting = (name, def) => (env[name] ? env[name].value : def);
  check(JSON.stringify(worker.args ?? ["worker"]) === '["worker"]', `the worker runs ${JSON.stringify(worker.args)}, not worker`);

  // HTTP endpoint: probe paths and port are the worker's LEDGERQ_HTTP_ADDR.
  const httpAddr = setting("LEDGERQ_HTTP_ADDR", "0.0.0.0:8080");
  check(httpAddr !== "off", "LEDGERQ_HTTP_ADDR is off: the probes would fail");
  const httpPort = Number(httpAddr.split(":").pop());
  check(httpPort === v.worker.httpPort, `LEDGERQ_HTTP_ADDR ${httpAddr} is not on worker.httpPort ${v.worker.httpPort}`);
  const ports = Object.fromEntries((worker.ports ?? []).map((p) => [p.name, p.containerPort]));
  const resolve = (p) => (typeof p === "number" ? p : ports[p]);
  for (const [probe, wantPath] of [["startupProbe", "/healthz"], ["livenessProbe", "/healthz"], ["readinessProbe", "/readyz"]]) {
    const get = worker[probe]?.httpGet;
    check(get, `the worker has no ${probe} with httpGet`);
    if (!get) continue;
    check(get.path === wantPath, `${probe} path is ${get.path}, not ${wantPath}`);
    check(resolve(get.port) === httpPort, `${probe} port ${get.port} (${resolve(get.port)}) is not the worker's HTTP port ${httpPort}`);
    check((get.scheme ?? "HTTP") === "HTTP", `${probe} scheme is ${get.scheme}`);
  }

  // Shutdown: the kubelet waits longer than the worker's own drain.
  const shutdownMs = Number(setting("LEDGERQ_SHUTDOWN_TIMEOUT_MS", "25000"));
  check(shutdownMs === v.worker.shutdownTimeoutMs, `LEDGERQ_SHUTDOWN_TIMEOUT_MS ${shutdownMs} is not worker.shutdownTimeoutMs`);
  const grace = pod.terminationGracePeriodSeconds ?? 30;
  check(grace * 1000 > shutdownMs, `terminationGracePeriodSeconds ${grace}s is not above the shutdown timeout ${shutdownMs}ms`);

  // Names the worker uses are the values'.
  const queue = setting("LEDGERQ_QUEUE", "payments.process");
  check(queue === v.worker.topology.queue, `LEDGERQ_QUEUE ${queue} is not worker.topology.queue ${v.worker.topology.queue}`);
  check(setting("LEDGERQ_DECLARE", "true") === String(v.worker.declare), "LEDGERQ_DECLARE is not worker.declare");

  // --- secrets: URLs only from the existing Secret, as files
  check(byKind("Secret").length === 0 && byKind("ConfigMap").length === 0, "the chart renders a Secret or ConfigMap");
  for (const { owner, template } of podTemplates(objects)) {
    const mounts = new Map();
    const volumes = Object.fromEntries((template.spec.volumes ?? []).map((vol) => [vol.name, vol]));
    for (const c of [...(template.spec.initContainers ?? []), ...template.spec.containers]) {
      for (const m of c.volumeMounts ?? []) mounts.set(m.mountPath, { ...m, volume: volumes[m.name] });
      for (const e of c.env ?? []) {
        check(!/^(LEDGERQ_AMQP_URL|LEDGERQ_DATABASE_URL|PGPASSWORD)$/.test(e.name), `${owner} ${c.name} sets ${e.name} directly (use the *_FILE settings)`);
        check(!(e.valueFrom && e.valueFrom.secretKeyRef), `${owner} ${c.name} ${e.name} takes a secret as an environment variable`);
        if (/^LEDGERQ_.*_FILE$/.test(e.name)) {
          // Each file setting reads the key of the Secret the values name.
          const want = {
            LEDGERQ_AMQP_URL_FILE: [v.secret.name, v.secret.amqpUrlKey],
            LEDGERQ_DATABASE_URL_FILE: [v.secret.name, v.secret.databaseUrlKey],
            LEDGERQ_AMQP_CA_FILE: [v.tls.secretName, v.tls.amqpCaKey],
            LEDGERQ_AMQP_CERT_FILE: [v.tls.secretName, v.tls.amqpCertKey],
            LEDGERQ_AMQP_KEY_FILE: [v.tls.secretName, v.tls.amqpKeyKey],
          }[e.name];
          check(want, `${owner} ${c.name} sets ${e.name}, which the assertions do not know`);
          const dir = path.posix.dirname(e.value);
          const file = path.posix.basename(e.value);
          const m = mounts.get(dir);
          const secret = m?.volume?.secret;
          check(secret, `${owner} ${c.name} ${e.name}=${e.value} is not in a mounted Secret`);
          if (!secret || !want) continue;
          check(m.readOnly === true, `${owner}: Secret ${secret.secretName} is mounted writable`);
          check(secret.secretName === want[0], `${owner} ${e.name} reads Secret ${secret.secretName}, not ${want[0]}`);
          const key = secret.items ? secret.items.find((i) => i.path === file)?.key : file;
          check(key === want[1], `${owner} ${e.name}: file ${file} is key ${key} of the Secret, not ${want[1]}`);
        }
      }
    }
  }
  check(env.LEDGERQ_AMQP_URL_FILE && env.LEDGERQ_DATABASE_URL_FILE, "the worker lacks LEDGERQ_AMQP_URL_FILE or LEDGERQ_DATABASE_URL_FILE");
  for (const o of objects) {
    for (const [where, s] of strings(o)) {
      check(!CREDENTIAL_URL.test(s), `${o.kind}/${o.metadata.name} ${where} holds a URL with credentials`);
    }
  }
  for (const [where, s] of strings(v)) check(!CREDENTIAL_URL.test(s), `values ${where} hold a URL with credentials`);

  // --- security: no container runs as root, least privilege
  check(IMAGE_USER && /^[1-9][0-9]*(:[0-9]+)?$/.test(IMAGE_USER), `deploy/Dockerfile's USER ${IMAGE_USER} is not a numeric non-root user`);
  const imageUid = Number(String(IMAGE_USER).split(":")[0]);
  for (const { owner, template } of podTemplates(objects)) {
    const ps = template.spec.securityContext ?? {};
    check(template.spec.automountServiceAccountToken === false, `${owner} mounts a service account token`);
    check(!template.spec.hostNetwork && !template.spec.hostPID && !template.spec.hostIPC, `${owner} shares a host namespace`);
    for (const c of [...(template.spec.initContainers ?? []), ...template.spec.containers]) {
      const cs = c.securityContext ?? {};
      const nonRoot = cs.runAsNonRoot ?? ps.runAsNonRoot;
      const uid = cs.runAsUser ?? ps.runAsUser ?? imageUid;
      const what = `${owner} container ${c.name}`;
      check(nonRoot === true, `${what}: runAsNonRoot is not true`);
      check(uid !== 0, `${what} runs as root (uid 0)`);
      check(uid === imageUid, `${what} runs as uid ${uid}, the image as ${imageUid}`);
      check((cs.runAsGroup ?? ps.runAsGroup) !== 0, `${what} runs with group 0`);
      check(cs.allowPrivilegeEscalation === false, `${what}: allowPrivilegeEscalation is not false`);
      check(cs.privileged !== true, `${what} is privileged`);
      check(cs.readOnlyRootFilesystem === true, `${what}: the root filesystem is writable`);
      check((cs.capabilities?.drop ?? []).includes("ALL"), `${what} does not drop ALL capabilities`);
      check(!(cs.capabilities?.add ?? []).length, `${what} adds capabilities`);
      const seccomp = cs.seccompProfile?.type ?? ps.seccompProfile?.type;
      check(seccomp === "RuntimeDefault", `${what}: seccomp is ${seccomp}, not RuntimeDefault`);
      check(c.resources?.requests?.cpu && c.resources?.requests?.memory, `${what} has no cpu/memory requests`);
      check(c.resources?.limits?.memory, `${what} has no memory limit`);
      check(!/:latest$/.test(c.image) && /[:@]/.test(c.image), `${what} image ${c.image} is not pinned`);
    }
  }
  for (const sa of byKind("ServiceAccount")) check(sa.automountServiceAccountToken === false, `ServiceAccount ${sa.metadata.name} automounts its token`);
  if (v.serviceAccount.create) {
    check(byKind("ServiceAccount").some((sa) => sa.metadata.name === pod.serviceAccountName), "the worker's ServiceAccount is not the chart's");
  }

  // --- selectors all find the worker pods
  const podLabels = dep.spec.template.metadata.labels;
  check(matches(dep.spec.selector.matchLabels, podLabels), "the Deployment's selector does not match its pods");
  for (const svc of byKind("Service")) {
    check(matches(svc.spec.selector, podLabels), `Service ${svc.metadata.name} does not select the workers`);
    for (const p of svc.spec.ports) check(resolve(p.targetPort) === httpPort, `Service port ${p.name} does not reach the HTTP port`);
  }
  for (const pdb of byKind("PodDisruptionBudget")) check(matches(pdb.spec.selector.matchLabels, podLabels), "the PodDisruptionBudget does not select the workers");
  check(byKind("PodDisruptionBudget").length === (v.podDisruptionBudget.enabled ? 1 : 0), "PodDisruptionBudget presence does not follow podDisruptionBudget.enabled");
  for (const t of pod.topologySpreadConstraints ?? []) check(matches(t.labelSelector?.matchLabels, podLabels), `topology spread on ${t.topologyKey} does not select the workers`);
  if (v.topologySpread.enabled) check((pod.topologySpreadConstraints ?? []).length > 0, "no topology spread constraints");

  // --- autoscaling
  const mode = v.autoscaling.mode;
  const scaled = byKind("ScaledObject");
  const auths = byKind("TriggerAuthentication");
  const hpas = byKind("HorizontalPodAutoscaler");
  check(scaled.length === (mode === "keda" ? 1 : 0) && auths.length === (mode === "keda" ? 1 : 0), `mode ${mode}: ${scaled.length} ScaledObject(s), ${auths.length} TriggerAuthentication(s)`);
  check(hpas.length === (mode === "hpa" ? 1 : 0), `mode ${mode}: ${hpas.length} HorizontalPodAutoscaler(s)`);
  if (mode === "none") check(dep.spec.replicas === v.replicaCount, `mode none: replicas ${dep.spec.replicas}, not replicaCount ${v.replicaCount}`);
  else check(dep.spec.replicas === undefined, `mode ${mode}: the Deployment sets replicas, fighting the autoscaler`);
  for (const so of scaled) {
    const s = so.spec;
    check(s.scaleTargetRef.name === dep.metadata.name && (s.scaleTargetRef.kind ?? "Deployment") === "Deployment", "the ScaledObject does not target the worker Deployment");
    check(s.minReplicaCount >= 1 && s.minReplicaCount <= s.maxReplicaCount, `ScaledObject replicas ${s.minReplicaCount}..${s.maxReplicaCount}`);
    check(s.fallback && s.fallback.replicas >= s.minReplicaCount && s.fallback.replicas <= s.maxReplicaCount, "the ScaledObject has no fallback within min..max replicas");
    check(s.triggers.length === 1, "the ScaledObject should have one trigger");
    const t = s.triggers[0];
    check(t.type === "rabbitmq", `trigger type ${t.type}`);
    check(t.metadata.queueName === queue, `the ScaledObject watches queue ${t.metadata.queueName}, the worker consumes ${queue}`);
    check(t.metadata.mode === "QueueLength", `trigger mode ${t.metadata.mode}`);
    check(Number(t.metadata.value) === v.autoscaling.targetQueueLength, "trigger value is not autoscaling.targetQueueLength");
    check(!("host" in t.metadata) && !("hostFromEnv" in t.metadata), "the trigger carries its host in metadata instead of the TriggerAuthentication");
    const protocol = t.metadata.protocol;
    check(protocol === v.autoscaling.keda.protocol, `trigger protocol ${protocol}`);
    // Over AMQP, KEDA gets the queue's ready count only; the management API
    // (http) gives ready + unacknowledged unless excludeUnacknowledged is true.
    if (protocol === "http") check(t.metadata.excludeUnacknowledged !== "true", "the trigger excludes unacknowledged messages");
    const auth = auths.find((a) => a.metadata.name === t.authenticationRef?.name);
    check(auth, "the trigger's authenticationRef names no rendered TriggerAuthentication");
    if (auth) {
      const host = (auth.spec.secretTargetRef ?? []).find((r) => r.parameter === "host");
      check(host && host.name === v.secret.name, "the TriggerAuthentication does not read host from the workers' Secret");
      const wantKey = protocol === "http" ? v.secret.managementUrlKey : v.secret.amqpUrlKey;
      check(host && host.key === wantKey, `the TriggerAuthentication reads key ${host?.key}, not ${wantKey}`);
      const workerSecret = pod.volumes.find((vol) => vol.secret)?.secret.secretName;
      check(host && host.name === workerSecret, "KEDA and the workers read different Secrets");
    }
  }
  for (const hpa of hpas) {
    const s = hpa.spec;
    check(s.scaleTargetRef.name === dep.metadata.name && s.scaleTargetRef.kind === "Deployment", "the HPA does not target the worker Deployment");
    check(s.minReplicas >= 1 && s.minReplicas <= s.maxReplicas, `HPA replicas ${s.minReplicas}..${s.maxReplicas}`);
    check(s.metrics.length === 1 && s.metrics[0].type === "External", "the HPA should scale on one External metric");
    const m = s.metrics[0].external;
    check(m?.metric.name === v.autoscaling.hpa.metricName, `HPA metric ${m?.metric.name}, not ${v.autoscaling.hpa.metricName}`);
    // The workers' series carry the label service=<their Service> (the
    // ServiceMonitor's scrape): by default the HPA selects this release's.
    const sel = m?.metric.selector?.matchLabels ?? {};
    if (Object.keys(v.autoscaling.hpa.metricSelector).length === 0) {
      const svc = byKind("Service").find((x) => matches(x.spec.selector, podLabels));
      check(svc && sel.service === svc.metadata.name, `the HPA's metric selects service ${sel.service}, not the workers' Service ${svc?.metadata.name}`);
    } else check(JSON.stringify(sel) === JSON.stringify(v.autoscaling.hpa.metricSelector), "the HPA's metric selector is not autoscaling.hpa.metricSelector");
    check(m?.target.type === "AverageValue" && Number(m.target.averageValue) === v.autoscaling.targetQueueLength, "the HPA target is not an AverageValue of autoscaling.targetQueueLength");
  }

  // --- network policies
  const nps = byKind("NetworkPolicy");
  if (!v.networkPolicy.enabled) check(nps.length === 0, "networkPolicy.enabled=false still renders NetworkPolicies");
  else {
    const np = nps.find((n) => matches(n.spec.podSelector.matchLabels, podLabels));
    check(np, "no NetworkPolicy selects the workers");
    if (np) {
      check(np.spec.policyTypes.includes("Ingress") && np.spec.policyTypes.includes("Egress"), "the workers' NetworkPolicy does not restrict both directions");
      const egressPorts = (proto) => new Set(np.spec.egress.flatMap((r) => (r.ports ?? []).filter((p) => (p.protocol ?? "TCP") === proto).map((p) => p.port)));
      check(egressPorts("UDP").has(53) && egressPorts("TCP").has(53), "no DNS egress (UDP and TCP 53)");
      for (const p of v.networkPolicy.amqp.ports) check(egressPorts("TCP").has(p), `no AMQP egress on ${p}`);
      for (const p of v.networkPolicy.postgresql.ports) check(egressPorts("TCP").has(p), `no PostgreSQL egress on ${p}`);
      check(np.spec.egress.every((r) => (r.ports ?? []).length > 0), "an egress rule without ports opens every port");
      const ingressPorts = np.spec.ingress.flatMap((r) => (r.ports ?? []).map((p) => resolve(p.port)));
      check(ingressPorts.length > 0 && ingressPorts.every((p) => p === httpPort), `ingress ports ${ingressPorts} are not just the HTTP port ${httpPort}`);
    }
    if (v.migration.enabled) {
      const mig = byKind("Job")[0];
      const mnp = mig && nps.find((n) => matches(n.spec.podSelector.matchLabels, mig.spec.template.metadata.labels));
      check(mnp, "no NetworkPolicy lets the migration Job reach PostgreSQL");
      if (mnp) check(String(mnp.metadata.annotations?.["helm.sh/hook"]).includes("pre-install"), "the migration's NetworkPolicy is not created before the hook Job");
    }
  }

  // --- migration hook
  const jobs = byKind("Job");
  check(jobs.length === (v.migration.enabled ? 1 : 0), `migration.enabled=${v.migration.enabled} but ${jobs.length} Job(s)`);
  for (const job of jobs) {
    const hook = job.metadata.annotations?.["helm.sh/hook"] ?? "";
    check(hook.includes("pre-install") && hook.includes("pre-upgrade"), `the migration Job's hook is "${hook}"`);
    const c = job.spec.template.spec.containers[0];
    check(JSON.stringify(c.args) === '["migrate"]', `the migration runs ${JSON.stringify(c.args)}`);
    check(job.spec.template.spec.restartPolicy === "Never" || job.spec.template.spec.restartPolicy === "OnFailure", "the Job's restartPolicy");
    check(!envOf(c).LEDGERQ_AMQP_URL_FILE, "the migration gets the AMQP URL, which it does not need");
  }

  // --- monitoring
  const sms = byKind("ServiceMonitor");
  check(sms.length === (v.serviceMonitor.enabled ? 1 : 0), "ServiceMonitor presence does not follow serviceMonitor.enabled");
  for (const sm of sms) {
    const svc = byKind("Service").find((s) => matches(sm.spec.selector.matchLabels, s.metadata.labels));
    check(svc, "the ServiceMonitor selects no Service of the release");
    for (const ep of sm.spec.endpoints) {
      check(ep.path === "/metrics", `ServiceMonitor path ${ep.path}`);
      check(svc && svc.spec.ports.some((p) => p.name === ep.port), `ServiceMonitor port ${ep.port} is not a port of the Service`);
    }
  }
  check(byKind("PrometheusRule").length === (v.prometheusRule.enabled ? 1 : 0), "PrometheusRule presence does not follow prometheusRule.enabled");
  return fail;
}

// ---------------------------------------------------------------- the matrix

const CASES = [
  { name: "defaults", values: {} },
  {
    name: "keda",
    values: {
      autoscaling: {
        mode: "keda",
        minReplicas: 1,
        maxReplicas: 30,
        targetQueueLength: 5000,
        keda: { protocol: "http", vhostName: "ledger", pollingInterval: 5, fallback: { failureThreshold: 5, replicas: 6 } },
      },
      worker: { prefetch: 500, topology: { queue: "ledger.payments.process" } },
      secret: { name: "payments-connection", managementUrlKey: "MGMT_URL" },
    },
  },
  { name: "keda-amqp", values: { autoscaling: { mode: "keda", keda: { protocol: "amqp" } } } },
  { name: "hpa", values: { autoscaling: { mode: "hpa" } } },
  {
    name: "hpa-custom-metric",
    values: { autoscaling: { mode: "hpa", minReplicas: 3, hpa: { metricName: "rabbitmq_queue_messages", metricSelector: { queue: "payments.process", vhost: "ledger" } } } },
  },
  { name: "none", values: { autoscaling: { mode: "none" }, replicaCount: 3 } },
  { name: "network-policy-off", values: { networkPolicy: { enabled: false } } },
  {
    name: "tls",
    values: { tls: { secretName: "ledgerq-tls", amqpCaKey: "ca.crt", amqpCertKey: "tls.crt", amqpKeyKey: "tls.key" }, networkPolicy: { amqp: { ports: [5671] } } },
  },
  {
    name: "network-policy-peers",
    values: {
      networkPolicy: {
        dns: { to: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } }, podSelector: { matchLabels: { "k8s-app": "kube-dns" } } }] },
        amqp: { ports: [5671], to: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "rabbitmq" } } }] },
        postgresql: { to: [{ ipBlock: { cidr: "10.20.0.0/24" } }] },
        metrics: { from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } } }] },
      },
    },
  },
  { name: "service-monitor", values: { serviceMonitor: { enabled: true, labels: { release: "prometheus" } }, prometheusRule: { enabled: true } } },
  {
    name: "custom-settings",
    values: {
      image: { repository: "registry.example.com/payments/ledgerq", digest: `sha256:${"a".repeat(64)}` },
      worker: {
        httpPort: 9100,
        shutdownTimeoutMs: 60500,
        declare: true,
        topology: { exchange: "pay", queue: "pay.process", resultsExchange: "pay.results", dlx: "pay.dlx", dlq: "pay.dead" },
        extraEnv: [{ name: "PGAPPNAME", value: "ledgerq" }, { name: "PGSSLMODE", value: "verify-full" }],
      },
      terminationGraceMarginSeconds: 1,
      service: { port: 9100 },
      secret: { name: "pay-conn", amqpUrlKey: "AMQP_URL", databaseUrlKey: "DATABASE_URL" },
      serviceAccount: { create: false, name: "ledgerq-runtime" },
      migration: { enabled: false },
      topologySpread: { enabled: false },
      podDisruptionBudget: { enabled: false },
      serviceMonitor: { enabled: true },
    },
  },
];

// Values that must be refused, and the message that says why.
const REFUSED = [
  { name: "typo in a main key", values: { autoscaling: { mod: "keda" } }, error: /Additional property mod is not allowed/ },
  { name: "unknown top-level key", values: { autoscalling: {} }, error: /Additional property autoscalling is not allowed/ },
  { name: "a URL as a value", values: { secret: { amqpUrl: "amqp://ledgerq:s3cret@rabbitmq:5672/%2f" } }, error: /Additional property amqpUrl is not allowed/ },
  { name: "a URL as a Secret key", values: { secret: { databaseUrlKey: "postgresql://ledgerq:s3cret@pg/ledgerq" } }, error: /databaseUrlKey/ },
  { name: "a connection URL in extraEnv", values: { worker: { extraEnv: [{ name: "LEDGERQ_DATABASE_URL", value: "postgresql:///x" }] } }, error: /extraEnv/ },
  { name: "credentials in an extraEnv value", values: { worker: { extraEnv: [{ name: "X", value: "amqp://u:pw@host/" }] } }, error: /extraEnv/ },
  { name: "an unknown autoscaling mode", values: { autoscaling: { mode: "auto" } }, error: /mode/ },
  { name: "a fallback outside min..max", values: { autoscaling: { keda: { fallback: { replicas: 50 } } } }, error: /fallback.replicas must lie between/ },
  { name: "minReplicas above maxReplicas", values: { autoscaling: { mode: "hpa", minReplicas: 5, maxReplicas: 2 } }, error: /minReplicas must not exceed/ },
  { name: "no grace margin", values: { terminationGraceMarginSeconds: 0 }, error: /terminationGraceMarginSeconds/ },
  { name: "a client certificate without its key", values: { tls: { secretName: "t", amqpCertKey: "tls.crt" } }, error: /go together/ },
  { name: "a TLS key without tls.secretName", values: { tls: { amqpCaKey: "ca.crt" } }, error: /need tls.secretName/ },
];

// Values the schema lets through but the assertions must catch.
const CAUGHT = [
  { name: "a container as root", values: { securityContext: { runAsUser: 0 } }, error: /runs as root/ },
  { name: "a writable root filesystem", values: { securityContext: { readOnlyRootFilesystem: false } }, error: /root filesystem is writable/ },
];

async function renderAndCheck(c) {
  const r = render(c.name, c.values);
  if (r.status !== 0) return { rendered: false, errors: [`helm template failed: ${r.stderr.trim()}`] };
  const objects = [];
  const errors = [];
  for (const doc of parseAllDocuments(r.stdout)) {
    if (doc.errors.length) errors.push(`YAML: ${doc.errors[0].message}`);
    const o = doc.toJS();
    if (o) objects.push(o);
  }
  return { rendered: true, objects, errors };
}

async function main() {
  // helm lint: the defaults, then each case.
  {
    const r = helm(["lint", CHART, "--strict", "--namespace", NAMESPACE]);
    report(r.status === 0, "helm lint --strict (defaults)", (r.stdout + r.stderr).trim().split("\n"));
  }

  for (const c of CASES) {
    const v = merge(DEFAULTS, c.values);
    const lint = helm(["lint", CHART, "--strict", "--namespace", NAMESPACE, "-f", writeValues(`lint-${c.name}`, c.values)]);
    if (lint.status !== 0) {
      report(false, `helm lint --strict (${c.name})`, (lint.stdout + lint.stderr).trim().split("\n"));
      continue;
    }
    const { rendered, objects, errors } = await renderAndCheck(c);
    if (!rendered) {
      report(false, `chart case ${c.name}: helm template`, errors);
      continue;
    }
    const schemaErrors = [...errors];
    for (const o of objects) {
      for (const e of await validateObject(o)) schemaErrors.push(`${o.kind}/${o.metadata?.name}: ${e}`);
    }
    const kinds = objects.map((o) => o.kind).sort().join(", ");
    report(schemaErrors.length === 0, `chart case ${c.name}: lint, ${objects.length} objects valid against the schemas (${kinds})`, schemaErrors);
    const failed = assertRelease(objects, v);
    report(failed.length === 0, `chart case ${c.name}: assertions`, failed);
  }

  for (const c of REFUSED) {
    const r = render(`refused-${c.name.replace(/\W+/g, "-")}`, c.values);
    report(r.status !== 0 && c.error.test(r.stderr), `chart refuses ${c.name}`, r.status === 0 ? "helm template accepted it" : `unexpected error: ${r.stderr.trim()}`);
  }

  for (const c of CAUGHT) {
    const { rendered, objects, errors } = await renderAndCheck(c);
    const failed = rendered ? assertRelease(objects, merge(DEFAULTS, c.values)) : errors;
    report(rendered && failed.some((f) => c.error.test(f)), `assertions catch ${c.name}`, failed.length ? failed : "no assertion failed");
  }

  // NOTES.txt: helm renders it only on install, which needs a cluster. Render
  // it through a copy of the chart where a template includes it.
  {
    const copy = path.join(TMP, "chart-notes");
    fs.cpSync(CHART, copy, { recursive: true });
    fs.copyFileSync(path.join(CHART, "templates", "NOTES.txt"), path.join(copy, "notes-under-test.txt"));
    fs.writeFileSync(
      path.join(copy, "templates", "zz-notes-under-test.yaml"),
      'notes: {{ tpl (.Files.Get "notes-under-test.txt") . | quote }}\n',
    );
    const problems = [];
    for (const c of CASES) {
      const r = helm(["template", RELEASE, copy, "--namespace", NAMESPACE, "-f", writeValues(`notes-${c.name}`, c.values), "--show-only", "templates/zz-notes-under-test.yaml"]);
      if (r.status !== 0) {
        problems.push(`${c.name}: ${r.stderr.trim()}`);
        continue;
      }
      const notes = parseYaml(r.stdout).notes;
      const v = merge(DEFAULTS, c.values);
      if (!notes.includes(`"${v.secret.name}"`)) problems.push(`${c.name}: the notes do not name the Secret`);
      if (CREDENTIAL_URL.test(notes)) problems.push(`${c.name}: the notes hold a URL with credentials`);
    }
    report(problems.length === 0, `NOTES.txt renders for all ${CASES.length} cases`, problems);
  }

  console.log(failures ? `chart checks: ${failures} failed` : "chart checks: all passed");
  process.exit(failures ? 1 : 0);
}

main().catch((e) => {
  console.log(`FAIL chart checks crashed: ${e.stack ?? e}`);
  process.exit(1);
});
