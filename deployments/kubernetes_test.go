package deployments_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestKubernetes checks the manifests' structure and that they fit each
// other: selectors, names, probes, the drain against the grace period.
func TestKubernetes(t *testing.T) {
	const dir = "deployments/kubernetes"
	files, err := filepath.Glob(repoPath(dir + "/*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", dir, err)
	}
	objects := map[string]map[string]any{} // kind → object
	var kustomization map[string]any
	var manifests []string
	for _, f := range files {
		rel := dir + "/" + filepath.Base(f)
		for _, doc := range loadYAML(t, rel) {
			kind, _ := doc["kind"].(string)
			switch {
			case kind == "Kustomization":
				kustomization = doc
			case kind == "":
				if _, ok := doc["scrape_configs"]; !ok {
					t.Errorf("%s: neither a Kubernetes object nor a scrape config", rel)
				}
			default:
				for _, k := range []string{"apiVersion", "kind"} {
					text(t, rel, doc, k)
				}
				if name := text(t, rel, doc, "metadata", "name"); name != "cometbox" {
					t.Errorf("%s: %s named %q; want cometbox", rel, kind, name)
				}
				if _, dup := objects[kind]; dup {
					t.Errorf("%s: a second %s", rel, kind)
				}
				objects[kind] = doc
				if kind != "Secret" {
					manifests = append(manifests, filepath.Base(f))
				}
			}
		}
	}
	for _, kind := range []string{"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ConfigMap", "Secret"} {
		if objects[kind] == nil {
			t.Fatalf("%s: no %s", dir, kind)
		}
	}

	t.Run("kustomization", func(t *testing.T) {
		if kustomization == nil {
			t.Fatal("no kustomization.yaml")
		}
		var res []string
		for _, r := range list(t, "kustomization.yaml", kustomization, "resources") {
			res = append(res, fmt.Sprint(r))
		}
		slices.Sort(res)
		slices.Sort(manifests)
		if !slices.Equal(res, manifests) {
			t.Errorf("kustomization.yaml resources %v; want every manifest but the Secret example: %v", res, manifests)
		}
	})

	dep, cm, secret := objects["Deployment"], objects["ConfigMap"], objects["Secret"]
	const dw = "deployment.yaml"
	podLabels := mapping(t, dw, dep, "spec", "template", "metadata", "labels")
	matches := func(where string, sel map[string]any) {
		t.Helper()
		if len(sel) == 0 {
			t.Errorf("%s: empty selector", where)
		}
		for k, v := range sel {
			if podLabels[k] != v {
				t.Errorf("%s: selector %s=%v does not match the pod template's labels %v", where, k, v, podLabels)
			}
		}
	}

	t.Run("selectors", func(t *testing.T) {
		matches(dw, mapping(t, dw, dep, "spec", "selector", "matchLabels"))
		matches("service.yaml", mapping(t, "service.yaml", objects["Service"], "spec", "selector"))
		matches("poddisruptionbudget.yaml", mapping(t, "poddisruptionbudget.yaml", objects["PodDisruptionBudget"], "spec", "selector", "matchLabels"))
		hpa := objects["HorizontalPodAutoscaler"]
		if k, n := text(t, "hpa", hpa, "spec", "scaleTargetRef", "kind"), text(t, "hpa", hpa, "spec", "scaleTargetRef", "name"); k != "Deployment" || n != "cometbox" {
			t.Errorf("horizontalpodautoscaler.yaml: scales %s/%s; want Deployment/cometbox", k, n)
		}
	})

	spec := mapping(t, dw, dep, "spec", "template", "spec")
	ctr := mapping(t, dw, spec, "containers", 0)
	env := map[string]any{}
	for k, v := range mapping(t, "configmap.yaml", cm, "data") {
		env[k] = v
	}

	t.Run("container", func(t *testing.T) {
		ports := map[string]int{}
		for _, p := range list(t, dw, ctr, "ports") {
			n, _ := strconv.Atoi(text(t, dw, p, "containerPort"))
			ports[text(t, dw, p, "name")] = n
		}
		// Readiness on the admin port, the only one serving /readyz;
		// liveness on /healthz, which both serve.
		for probe, want := range map[string][2]string{"readinessProbe": {"/readyz", "admin"}, "livenessProbe": {"/healthz", ""}} {
			if got := text(t, dw, ctr, probe, "httpGet", "path"); got != want[0] {
				t.Errorf("%s: %s on %s; want %s", dw, probe, got, want[0])
			}
			port := text(t, dw, ctr, probe, "httpGet", "port")
			if ports[port] == 0 {
				t.Errorf("%s: %s port %q is not a named container port %v", dw, probe, port, ports)
			}
			if want[1] != "" && port != want[1] {
				t.Errorf("%s: %s on port %q; want %q", dw, probe, port, want[1])
			}
		}
		for k, name := range map[string]string{"COMETBOX_LISTEN": "http", "COMETBOX_ADMIN_LISTEN": "admin"} {
			if listen := fmt.Sprint(env[k]); ports[name] == 0 || !strings.HasSuffix(listen, ":"+strconv.Itoa(ports[name])) {
				t.Errorf("configmap.yaml: %s %q; want the container port %s (%d)", k, listen, name, ports[name])
			}
		}
		ann := mapping(t, dw, dep, "spec", "template", "metadata", "annotations")
		if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(ports["admin"]) || ann["prometheus.io/path"] != "/metrics" {
			t.Errorf("%s: scrape annotations %v; want scrape \"true\", port %d (admin), path /metrics", dw, ann, ports["admin"])
		}
		// The Service exposes what browsers and back ends need, and not
		// the admin port.
		const sw = "service.yaml"
		for _, p := range list(t, sw, objects["Service"], "spec", "ports") {
			if tp := text(t, sw, p, "targetPort"); tp != "http" && tp != strconv.Itoa(ports["http"]) {
				t.Errorf("%s: port %v targets %q; want only the public port http", sw, text(t, sw, p, "port"), tp)
			}
		}
		for _, path := range [][]any{
			{"securityContext", "readOnlyRootFilesystem"},
		} {
			if text(t, dw, ctr, path...) != "true" {
				t.Errorf("%s: container %v is not true", dw, path)
			}
		}
		if text(t, dw, ctr, "securityContext", "allowPrivilegeEscalation") != "false" {
			t.Errorf("%s: allowPrivilegeEscalation is not false", dw)
		}
		if !slices.Contains(list(t, dw, ctr, "securityContext", "capabilities", "drop"), any("ALL")) {
			t.Errorf("%s: capabilities do not drop ALL", dw)
		}
		if text(t, dw, spec, "securityContext", "runAsNonRoot") != "true" {
			t.Errorf("%s: pod securityContext.runAsNonRoot is not true", dw)
		}
		for _, r := range []string{"cpu", "memory"} {
			text(t, dw, ctr, "resources", "requests", r) // the HPA's CPU target is a share of the request
		}
		text(t, dw, ctr, "resources", "limits", "memory")
		if _, ok := dig(dep, "spec", "replicas"); ok {
			t.Errorf("%s: sets replicas, which the HorizontalPodAutoscaler owns", dw)
		}
		if text(t, dw, spec, "enableServiceLinks") != "false" {
			t.Errorf("%s: enableServiceLinks is not false: the Service named cometbox would put COMETBOX_PORT and more in the environment", dw)
		}

		refs := map[string]string{}
		for _, e := range list(t, dw, ctr, "envFrom") {
			for _, k := range []string{"configMapRef", "secretRef"} {
				if n, ok := dig(e, k, "name"); ok {
					refs[k] = fmt.Sprint(n)
				}
			}
		}
		if refs["configMapRef"] != "cometbox" || refs["secretRef"] != "cometbox" {
			t.Errorf("%s: envFrom %v; want the ConfigMap and the Secret cometbox", dw, refs)
		}
		nodeName := false
		for _, e := range list(t, dw, ctr, "env") {
			if text(t, dw, e, "name") == "COMETBOX_NODE_NAME" && text(t, dw, e, "valueFrom", "fieldRef", "fieldPath") == "metadata.name" {
				nodeName = true
			}
			env[text(t, dw, e, "name")] = e
		}
		if !nodeName {
			t.Errorf("%s: COMETBOX_NODE_NAME does not come from the pod name", dw)
		}
		for k, v := range mapping(t, "secret.example.yaml", secret, "stringData") {
			env[k] = v
			if !strings.Contains(fmt.Sprint(v), "CHANGE-ME") {
				t.Errorf("secret.example.yaml: %s = %q; want a CHANGE-ME placeholder, never a real secret", k, v)
			}
		}
		for _, k := range []string{"COMETBOX_REDIS_URL", "COMETBOX_PUBLISH_SECRET", "COMETBOX_TOKEN_SECRET", "COMETBOX_LOG_FORMAT", "COMETBOX_DRAIN_DELAY"} {
			if _, ok := env[k]; !ok {
				t.Errorf("the pod's environment has no %s", k)
			}
		}
		checkNodeEnv(t, "the pod's environment", env)
	})

	t.Run("drain fits the grace period", func(t *testing.T) {
		kubernetesTimings(t).check(t, dw)
	})

	t.Run("disruptions and scaling", func(t *testing.T) {
		hpa, pdb := objects["HorizontalPodAutoscaler"], objects["PodDisruptionBudget"]
		minR, _ := strconv.Atoi(text(t, "hpa", hpa, "spec", "minReplicas"))
		maxR, _ := strconv.Atoi(text(t, "hpa", hpa, "spec", "maxReplicas"))
		if minR < 2 || maxR < minR {
			t.Errorf("horizontalpodautoscaler.yaml: %d to %d replicas; want at least 2, so that a drain has somewhere to send polls", minR, maxR)
		}
		if v, ok := dig(pdb, "spec", "maxUnavailable"); ok {
			if n, _ := strconv.Atoi(fmt.Sprint(v)); n < 1 || n >= minR {
				t.Errorf("poddisruptionbudget.yaml: maxUnavailable %v; want 1 to %d", v, minR-1)
			}
		} else if v, ok := dig(pdb, "spec", "minAvailable"); !ok {
			t.Error("poddisruptionbudget.yaml: neither maxUnavailable nor minAvailable")
		} else if n, _ := strconv.Atoi(fmt.Sprint(v)); n >= minR {
			t.Errorf("poddisruptionbudget.yaml: minAvailable %v blocks every eviction at %d replicas", v, minR)
		}
		cpu := false
		for _, m := range list(t, "hpa", hpa, "spec", "metrics") {
			if n, _ := dig(m, "resource", "name"); n == "cpu" {
				cpu = true
			}
		}
		if !cpu {
			t.Error("horizontalpodautoscaler.yaml: no CPU metric")
		}
	})

	t.Run("scrape config", func(t *testing.T) {
		const sw = "prometheus-scrape.yaml"
		job := loadYAML(t, dir+"/"+sw)[0]
		if n := text(t, sw, job, "scrape_configs", 0, "job_name"); n != "cometbox" {
			t.Errorf("%s: job %q; want cometbox, which the alerts select", sw, n)
		}
		keeps := map[string]string{}
		for _, r := range list(t, sw, job, "scrape_configs", 0, "relabel_configs") {
			if a, _ := dig(r, "action"); a == "keep" {
				keeps[fmt.Sprint(field(t, sw, r, "source_labels", 0))] = text(t, sw, r, "regex")
			}
		}
		if keeps["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] != "true" {
			t.Errorf("%s: does not keep only pods annotated prometheus.io/scrape: \"true\"", sw)
		}
		if got, want := keeps["__meta_kubernetes_pod_label_app_kubernetes_io_name"], fmt.Sprint(podLabels["app.kubernetes.io/name"]); got != want {
			t.Errorf("%s: keeps app.kubernetes.io/name=%q; the pods are %q", sw, got, want)
		}
	})
}
