package main

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// manifests are the objects an installation is made of, in the order they are applied.
func manifests(u *unstructured.Unstructured) []map[string]any {
	chi, ns := u.GetName(), u.GetNamespace()
	cs := layout(u)
	out := []map[string]any{
		configMap(u, "chi-"+chi+"-common-configd", commonFiles(u, cs)),
		configMap(u, "chi-"+chi+"-common-usersd", map[string]any{"chop-generated-users.xml": usersXML(u)}),
	}
	crService := object("v1", "Service", serviceName(u), u, labels(chi, ns))
	crService["spec"] = serviceSpec(u, cs, labels(chi, ns))
	out = append(out, crService)
	for _, c := range cs {
		for _, h := range hosts([]cluster{c}) {
			out = append(out, hostObjects(u, c, h)...)
		}
	}
	return out
}

func configMap(u *unstructured.Unstructured, name string, data map[string]any) map[string]any {
	m := object("v1", "ConfigMap", name, u, labels(u.GetName(), u.GetNamespace()))
	m["data"] = data
	return m
}

// commonFiles are the configuration files (config.d) and a remote_servers naming every host.
func commonFiles(u *unstructured.Unstructured, cs []cluster) map[string]any {
	files, _, _ := unstructured.NestedMap(u.Object, "spec", "configuration", "files")
	data := map[string]any{}
	for k, v := range files {
		if !strings.HasPrefix(k, "users.d/") && !strings.HasPrefix(k, "conf.d/") {
			data[strings.TrimPrefix(k, "config.d/")] = v
		}
	}
	var b strings.Builder
	b.WriteString("<clickhouse>\n  <remote_servers>\n")
	for _, c := range cs {
		fmt.Fprintf(&b, "    <%s>\n", c.name)
		for s := 0; s < int(c.shards); s++ {
			b.WriteString("      <shard>\n        <internal_replication>true</internal_replication>\n")
			for r := 0; r < int(c.replicas); r++ {
				fmt.Fprintf(&b, "        <replica><host>%s</host><port>9000</port></replica>\n", host{c.name, s, r}.name(u.GetName()))
			}
			b.WriteString("      </shard>\n")
		}
		fmt.Fprintf(&b, "    </%s>\n", c.name)
	}
	b.WriteString("  </remote_servers>\n</clickhouse>\n")
	data["chop-generated-remote_servers.xml"] = b.String()
	return data
}

// usersXML renders the `user/setting: value` pairs; a k8s_secret_password becomes a password
// read from the environment variable the pod gets from that Secret.
func usersXML(u *unstructured.Unstructured) string {
	users, _, _ := unstructured.NestedMap(u.Object, "spec", "configuration", "users")
	keys := make([]string, 0, len(users))
	for k := range users {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("<clickhouse>\n  <users>\n")
	secret := 0
	for _, k := range keys {
		user, setting, _ := strings.Cut(k, "/")
		switch v := users[k].(type) {
		case string:
			if setting == "k8s_secret_password" {
				fmt.Fprintf(&b, "    <%s><password from_env=\"%s\"/></%s>\n", user, secretEnv(secret), user)
				secret++
				continue
			}
			fmt.Fprintf(&b, "    <%s><%s>%s</%s></%s>\n", user, setting, v, setting, user)
		case []any:
			for _, item := range v {
				fmt.Fprintf(&b, "    <%s><%s>%v</%s></%s>\n", user, setting, item, setting, user)
			}
		default:
			fmt.Fprintf(&b, "    <%s><%s>%v</%s></%s>\n", user, setting, v, setting, user)
		}
	}
	b.WriteString("  </users>\n</clickhouse>\n")
	return b.String()
}

func secretEnv(i int) string { return fmt.Sprintf("CHOP_SECRET_PASSWORD_%d", i) }

// serviceName is the installation's Service: clickhouse-<name>, or keeper-<name> for a Keeper.
func serviceName(u *unstructured.Unstructured) string {
	if isKeeper(u) {
		return "keeper-" + u.GetName()
	}
	return "clickhouse-" + u.GetName()
}

func isKeeper(u *unstructured.Unstructured) bool {
	return u.GetKind() == "ClickHouseKeeperInstallation"
}

func serviceSpec(u *unstructured.Unstructured, cs []cluster, selector map[string]any) map[string]any {
	spec := map[string]any{"ports": []any{
		map[string]any{"name": "http", "port": int64(8123)},
		map[string]any{"name": "tcp", "port": int64(9000)},
	}}
	if isKeeper(u) {
		spec = map[string]any{"ports": []any{map[string]any{"name": "zk", "port": int64(2181)}}}
	}
	if len(cs) > 0 {
		if t := template(u, "serviceTemplates", cs[0].serv); t != nil {
			if s, ok := t["spec"].(map[string]any); ok {
				spec = runtime.DeepCopyJSON(s)
			}
		}
	}
	spec["selector"] = selector
	return spec
}

func hostObjects(u *unstructured.Unstructured, c cluster, h host) []map[string]any {
	chi, ns := u.GetName(), u.GetNamespace()
	name := h.name(chi)
	sel := labels(chi, ns,
		"clickhouse.altinity.com/cluster", c.name,
		"clickhouse.altinity.com/shard", fmt.Sprint(h.shard),
		"clickhouse.altinity.com/replica", fmt.Sprint(h.index))
	macros := configMap(u, fmt.Sprintf("chi-%s-deploy-confd-%s-%d-%d", chi, c.name, h.shard, h.index), map[string]any{
		"chop-generated-macros.xml": fmt.Sprintf("<clickhouse>\n  <macros>\n    <installation>%s</installation>\n    <cluster>%s</cluster>\n    <shard>%d</shard>\n    <replica>%s</replica>\n  </macros>\n</clickhouse>\n", chi, c.name, h.shard, name),
	})
	svc := object("v1", "Service", name, u, sel)
	svc["spec"] = map[string]any{
		"clusterIP": "None", "publishNotReadyAddresses": true, "selector": sel,
		"ports": []any{
			map[string]any{"name": "http", "port": int64(8123)},
			map[string]any{"name": "tcp", "port": int64(9000)},
			map[string]any{"name": "interserver", "port": int64(9009)},
		},
	}
	return []map[string]any{macros, svc, statefulSet(u, c, h, sel)}
}
