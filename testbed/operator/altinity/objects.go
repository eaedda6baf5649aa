package main

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// host is one ClickHouse server of the installation: a StatefulSet of one pod and its Service.
type host struct {
	cluster      string
	shard, index int
}

func (h host) name(chi string) string {
	return fmt.Sprintf("chi-%s-%s-%d-%d", chi, h.cluster, h.shard, h.index)
}

type cluster struct {
	name              string
	shards, replicas  int64
	pod, volume, serv string
}

// layout reads the clusters, each with its templates (its own, else the installation's defaults).
func layout(u *unstructured.Unstructured) []cluster {
	defaults, _, _ := unstructured.NestedStringMap(u.Object, "spec", "defaults", "templates")
	raw, _, _ := unstructured.NestedSlice(u.Object, "spec", "configuration", "clusters")
	var out []cluster
	for _, r := range raw {
		m, _ := r.(map[string]any)
		c := cluster{name: str(m, "name"), shards: 1, replicas: 1}
		if c.name == "" {
			c.name = "cluster"
		}
		if n, ok, _ := unstructured.NestedInt64(m, "layout", "shardsCount"); ok && n > 0 {
			c.shards = n
		}
		if n, ok, _ := unstructured.NestedInt64(m, "layout", "replicasCount"); ok && n > 0 {
			c.replicas = n
		}
		own, _, _ := unstructured.NestedStringMap(m, "templates")
		pick := func(key string, alt ...string) string {
			for _, k := range append([]string{key}, alt...) {
				if v := own[k]; v != "" {
					return v
				}
				if v := defaults[k]; v != "" {
					return v
				}
			}
			return ""
		}
		c.pod = pick("podTemplate")
		c.volume = pick("dataVolumeClaimTemplate", "volumeClaimTemplate")
		c.serv = pick("serviceTemplate")
		out = append(out, c)
	}
	return out
}

func hosts(cs []cluster) []host {
	var out []host
	for _, c := range cs {
		for s := 0; s < int(c.shards); s++ {
			for r := 0; r < int(c.replicas); r++ {
				out = append(out, host{cluster: c.name, shard: s, index: r})
			}
		}
	}
	return out
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// template finds spec.templates.<kind>[name == name].
func template(u *unstructured.Unstructured, kind, name string) map[string]any {
	list, _, _ := unstructured.NestedSlice(u.Object, "spec", "templates", kind)
	for _, t := range list {
		if m, ok := t.(map[string]any); ok && str(m, "name") == name {
			return m
		}
	}
	return nil
}

func labels(chi, ns string, extra ...string) map[string]any {
	l := map[string]any{
		"clickhouse.altinity.com/app":       "chop",
		"clickhouse.altinity.com/chi":       chi,
		"clickhouse.altinity.com/namespace": ns,
	}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return l
}

func object(apiVersion, kind, name string, owner *unstructured.Unstructured, lbl map[string]any) map[string]any {
	return map[string]any{
		"apiVersion": apiVersion,
		"kind":       kind,
		"metadata": map[string]any{
			"name":      name,
			"namespace": owner.GetNamespace(),
			"labels":    lbl,
			"ownerReferences": []any{map[string]any{
				"apiVersion": owner.GetAPIVersion(), "kind": owner.GetKind(),
				"name": owner.GetName(), "uid": string(owner.GetUID()), "controller": true,
			}},
		},
	}
}

// secretRefs are the users' `k8s_secret_password` settings ("[namespace/]secret/key"), in key order.
func secretRefs(u *unstructured.Unstructured) [][3]string {
	users, _, _ := unstructured.NestedMap(u.Object, "spec", "configuration", "users")
	keys := make([]string, 0, len(users))
	for k := range users {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out [][3]string
	for _, k := range keys {
		v, _ := users[k].(string)
		if !strings.HasSuffix(k, "/k8s_secret_password") {
			continue
		}
		p := strings.Split(v, "/")
		if len(p) == 2 {
			p = append([]string{u.GetNamespace()}, p...)
		}
		if len(p) == 3 {
			out = append(out, [3]string{p[0], p[1], p[2]})
		}
	}
	return out
}
