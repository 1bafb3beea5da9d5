//! `lineage k8s webhook-config`: the ValidatingWebhookConfiguration and Service that point the
//! Kubernetes API server at `lineage serve`, with a freshly generated CA and a serving
//! certificate for the Service's DNS names; and `lineage k8s manifests`: those plus the
//! server itself (Deployment, PodDisruptionBudget, NetworkPolicy, ConfigMap, Secret references).
//!
//! The CA's private key is not returned: it signs the one serving certificate and is
//! discarded, so it cannot later be used to mint other certificates the API server trusts.

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// What to generate.
#[derive(Debug, Clone)]
pub struct WebhookParams {
    pub service_name: String,
    pub namespace: String,
    /// The port the Service exposes (443) and the container port it targets.
    pub port: u16,
    pub target_port: u16,
    /// Namespaces the webhook governs; empty means all.
    pub namespaces: Vec<String>,
    /// `Fail` (default) or `Ignore`.
    pub failure_policy: &'static str,
}

/// The generated manifests and files.
pub struct WebhookBundle {
    /// A YAML stream: the Service, then the ValidatingWebhookConfiguration.
    pub manifests: String,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for WebhookBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookBundle")
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The CA's PEM and a serving certificate and key for the Service's DNS names.
struct Certs {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn certs(svc: &str, ns: &str) -> Result<Certs, rcgen::Error> {
    let dns = vec![
        svc.to_string(),
        format!("{svc}.{ns}"),
        format!("{svc}.{ns}.svc"),
        format!("{svc}.{ns}.svc.cluster.local"),
    ];
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(
        DnType::CommonName,
        format!("lineage webhook CA for {svc}.{ns}"),
    );
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key)?;

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(dns.clone())?;
    params
        .distinguished_name
        .push(DnType::CommonName, dns[2].clone());
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &ca, &ca_key)?;
    Ok(Certs {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// How long the API server waits for an admission answer. Admission answers from memory in
/// milliseconds; 5 s leaves room for a slow network without holding pod starts for long.
pub const TIMEOUT_SECONDS: u32 = 5;

/// The webhook's `namespaceSelector`: never `kube-system` (with `failurePolicy: Fail`, a
/// server that is down would otherwise stop the cluster's own pods) nor Lineage's own
/// namespace (a server that is down could never start its replacement); and, when lineage.toml
/// lists namespaces, only those.
fn namespace_selector(own: &str, governed: &[String]) -> String {
    let mut out = format!(
        "    namespaceSelector:\n      matchExpressions:\n        - key: kubernetes.io/metadata.name\n          operator: NotIn\n          values: [\"kube-system\", \"{own}\"]\n"
    );
    if !governed.is_empty() {
        let values: Vec<String> = governed.iter().map(|n| format!("\"{n}\"")).collect();
        out.push_str(&format!(
            "        - key: kubernetes.io/metadata.name\n          operator: In\n          values: [{}]\n",
            values.join(", ")
        ));
    }
    out
}

/// The ValidatingWebhookConfiguration, with its documented failure policy and timeout.
fn webhook_yaml(p: &WebhookParams, ca_pem: &str) -> String {
    let svc = &p.service_name;
    let ns = &p.namespace;
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes());
    let selector = namespace_selector(ns, &p.namespaces);
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {svc}.{ns}.lineage.dev
  labels:
    app.kubernetes.io/name: lineage
webhooks:
  - name: images.lineage.dev
    admissionReviewVersions: ["v1"]
    sideEffects: None
    # Fail: a pod is refused while no replica answers (safe; kube-system and {ns} are
    # excluded below so the cluster and Lineage itself can always start). Ignore
    # (`--fail-open`): pods start unjudged while Lineage is down.
    failurePolicy: {failure}
    matchPolicy: Equivalent
    # Seconds the API server waits for an answer before applying failurePolicy.
    timeoutSeconds: {timeout}
    clientConfig:
      service:
        name: {svc}
        namespace: {ns}
        path: /admission
        port: {port}
      caBundle: {ca_bundle}
{selector}    rules:
      - apiGroups: [""]
        apiVersions: ["v1"]
        operations: ["CREATE", "UPDATE"]
        resources: ["pods", "pods/ephemeralcontainers"]
      - apiGroups: ["apps"]
        apiVersions: ["v1"]
        operations: ["CREATE", "UPDATE"]
        resources: ["deployments", "statefulsets", "daemonsets", "replicasets"]
      - apiGroups: ["batch"]
        apiVersions: ["v1"]
        operations: ["CREATE", "UPDATE"]
        resources: ["jobs", "cronjobs"]
"#,
        port = p.port,
        failure = p.failure_policy,
        timeout = TIMEOUT_SECONDS,
    )
}

fn service_yaml(p: &WebhookParams) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: {svc}
  namespace: {ns}
  labels:
    app.kubernetes.io/name: lineage
spec:
  selector:
    app.kubernetes.io/name: lineage
  ports:
    - name: https
      port: {port}
      targetPort: {target}
      protocol: TCP
"#,
        svc = p.service_name,
        ns = p.namespace,
        port = p.port,
        target = p.target_port,
    )
}

pub fn webhook_config(p: &WebhookParams) -> Result<WebhookBundle, rcgen::Error> {
    let c = certs(&p.service_name, &p.namespace)?;
    let manifests = format!(
        "# Generated by `lineage k8s webhook-config`. Serve with:\n#   lineage serve --listen 0.0.0.0:{target} --tls-cert tls.crt --tls-key tls.key\n{}---\n{}",
        service_yaml(p),
        webhook_yaml(p, &c.ca_pem),
        target = p.target_port,
    );
    Ok(WebhookBundle {
        manifests,
        ca_pem: c.ca_pem,
        cert_pem: c.cert_pem,
        key_pem: c.key_pem,
    })
}

/// What `lineage k8s manifests` deploys.
#[derive(Debug, Clone)]
pub struct ServerParams {
    pub webhook: WebhookParams,
    /// The container image of Lineage (`ghcr.io/acme/lineage:0.1.0`).
    pub image: String,
    /// The settings file's text, shipped as a ConfigMap; `None` writes a minimal one.
    pub settings: Option<String>,
}

/// Indents every line of `text` by `n` spaces, for a YAML block scalar.
fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Everything the server needs in a cluster: a Deployment of two replicas (probes on
/// `/readyz` and `/healthz`), its Service, a PodDisruptionBudget, a NetworkPolicy, the
/// settings as a ConfigMap, the webhook configuration, and references to two Secrets the
/// operator creates: `NAME-secrets` (the database URL, the log key) and `NAME-tls` (the
/// serving certificate written beside the manifests).
pub fn server_manifests(p: &ServerParams) -> Result<WebhookBundle, rcgen::Error> {
    let w = &p.webhook;
    let c = certs(&w.service_name, &w.namespace)?;
    let name = &w.service_name;
    let ns = &w.namespace;
    let target = w.target_port;
    let settings = p
        .settings
        .clone()
        .unwrap_or_else(|| "[log]\nkey = \"/etc/lineage/secrets/log.key\"\n".to_string());
    let manifests = format!(
        r#"# Generated by `lineage k8s manifests`. Before applying, create the two Secrets it refers to:
#   kubectl -n {ns} create secret generic {name}-secrets #       --from-literal=database-url='postgres://lineage:PASSWORD@db:5432/lineage?sslmode=verify-full' #       --from-file=log.key=log.key
#   kubectl -n {ns} create secret tls {name}-tls --cert tls.crt --key tls.key
# API tokens live in the ledger (hashed); make one with
#   kubectl -n {ns} exec deploy/{name} -- lineage token create --name ci --scope build:write
# and give clients the secret as LINEAGE_TOKEN.
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}-config
  namespace: {ns}
  labels:
    app.kubernetes.io/name: lineage
data:
  lineage.toml: |
{settings}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {ns}
  labels:
    app.kubernetes.io/name: lineage
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/name: lineage
  template:
    metadata:
      labels:
        app.kubernetes.io/name: lineage
    spec:
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: lineage
          image: {image}
          args:
            - serve
            - --listen=0.0.0.0:{target}
            - --tls-cert=/etc/lineage/tls/tls.crt
            - --tls-key=/etc/lineage/tls/tls.key
            - --log-format=json
          env:
            - name: LINEAGE_CONFIG
              value: /etc/lineage/config/lineage.toml
            - name: LINEAGE_STORE
              valueFrom:
                secretKeyRef:
                  name: {name}-secrets
                  key: database-url
          ports:
            - name: https
              containerPort: {target}
              protocol: TCP
          readinessProbe:
            httpGet:
              path: /readyz
              port: https
              scheme: HTTPS
            periodSeconds: 5
            failureThreshold: 3
          livenessProbe:
            httpGet:
              path: /healthz
              port: https
              scheme: HTTPS
            initialDelaySeconds: 10
            periodSeconds: 10
            failureThreshold: 3
          resources:
            requests:
              cpu: 100m
              memory: 128Mi
            limits:
              memory: 512Mi
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
          volumeMounts:
            - name: config
              mountPath: /etc/lineage/config
              readOnly: true
            - name: secrets
              mountPath: /etc/lineage/secrets
              readOnly: true
            - name: tls
              mountPath: /etc/lineage/tls
              readOnly: true
      volumes:
        - name: config
          configMap:
            name: {name}-config
        - name: secrets
          secret:
            secretName: {name}-secrets
            items:
              - key: log.key
                path: log.key
                mode: 0400
        - name: tls
          secret:
            secretName: {name}-tls
---
{service}---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {name}
  namespace: {ns}
  labels:
    app.kubernetes.io/name: lineage
spec:
  # One replica keeps answering admission reviews while nodes drain.
  minAvailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: lineage
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {name}
  namespace: {ns}
  labels:
    app.kubernetes.io/name: lineage
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/name: lineage
  policyTypes: ["Ingress", "Egress"]
  ingress:
    # The API server (admission), CI jobs and people (API, dashboard): HTTPS only.
    - ports:
        - protocol: TCP
          port: {target}
  egress:
    # DNS, and PostgreSQL: the server calls nothing else (admission never uses the network).
    - ports:
        - protocol: UDP
          port: 53
        - protocol: TCP
          port: 53
    - ports:
        - protocol: TCP
          port: 5432
---
{webhook}"#,
        image = p.image,
        settings = indent(&settings, 4),
        service = service_yaml(w),
        webhook = webhook_yaml(w, &c.ca_pem),
    );
    Ok(WebhookBundle {
        manifests,
        ca_pem: c.ca_pem,
        cert_pem: c.cert_pem,
        key_pem: c.key_pem,
    })
}
