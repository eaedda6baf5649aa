package main

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// statefulSet is one host: one replica of the pod template, the three ConfigMaps mounted where
// ClickHouse reads them, the data claim from the volume claim template, and the users' Secret
// passwords as environment variables.
func statefulSet(u *unstructured.Unstructured, c cluster, h host, sel map[string]any) map[string]any {
	chi := u.GetName()
	name := h.name(chi)
	podSpec := map[string]any{"containers": []any{map[string]any{"name": "clickhouse", "image": "clickhouse/clickhouse-server:latest"}}}
	podLabels := runtime.DeepCopyJSON(sel)
	if t := template(u, "podTemplates", c.pod); t != nil {
		if s, ok := t["spec"].(map[string]any); ok {
			podSpec = runtime.DeepCopyJSON(s)
		}
		extra, _, _ := unstructured.NestedStringMap(t, "metadata", "labels")
		for k, v := range extra {
			podLabels[k] = v
		}
	}
	mounts := []any{
		mount("chi-"+chi+"-common-configd", "/etc/clickhouse-server/config.d/"),
		mount("chi-"+chi+"-common-usersd", "/etc/clickhouse-server/users.d/"),
		mount(fmt.Sprintf("chi-%s-deploy-confd-%s-%d-%d", chi, c.name, h.shard, h.index), "/etc/clickhouse-server/conf.d/"),
	}
	var claims []any
	if t := template(u, "volumeClaimTemplates", c.volume); t != nil {
		claims = append(claims, map[string]any{
			"metadata": map[string]any{"name": c.volume, "labels": runtime.DeepCopyJSON(sel)},
			"spec":     runtime.DeepCopyJSON(t["spec"].(map[string]any)),
		})
		mounts = append(mounts, map[string]any{"name": c.volume, "mountPath": "/var/lib/clickhouse"})
	}
	var env []any
	for i, ref := range secretRefs(u) {
		env = append(env, map[string]any{"name": secretEnv(i), "valueFrom": map[string]any{
			"secretKeyRef": map[string]any{"name": ref[1], "key": ref[2]},
		}})
	}
	containers, _ := podSpec["containers"].([]any)
	if len(containers) > 0 {
		c0 := containers[0].(map[string]any)
		c0["volumeMounts"] = append(asSlice(c0["volumeMounts"]), mounts[:]...)
		if len(env) > 0 {
			c0["env"] = append(asSlice(c0["env"]), env...)
		}
	}
	var volumes []any
	for _, m := range mounts[:3] {
		n := m.(map[string]any)["name"].(string)
		volumes = append(volumes, map[string]any{"name": n, "configMap": map[string]any{"name": n}})
	}
	podSpec["volumes"] = append(asSlice(podSpec["volumes"]), volumes...)
	sts := object("apps/v1", "StatefulSet", name, u, sel)
	sts["spec"] = map[string]any{
		"replicas":            int64(1),
		"serviceName":         name,
		"podManagementPolicy": "OrderedReady",
		"selector":            map[string]any{"matchLabels": sel},
		"template":            map[string]any{"metadata": map[string]any{"labels": podLabels}, "spec": podSpec},
	}
	if claims != nil {
		sts["spec"].(map[string]any)["volumeClaimTemplates"] = claims
	}
	return sts
}

func mount(name, path string) map[string]any {
	return map[string]any{"name": name, "mountPath": path}
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}
