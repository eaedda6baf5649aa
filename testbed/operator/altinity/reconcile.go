package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

type reconciler struct {
	client dynamic.Interface
	gvr    schema.GroupVersionResource
}

const (
	statusInProgress = "InProgress"
	statusCompleted  = "Completed"
	statusTerminate  = "Terminating"
	fieldManager     = "clickhouse-operator"
	again            = 500 * time.Millisecond
)

var resources = map[string]schema.GroupVersionResource{
	"ConfigMap":             {Version: "v1", Resource: "configmaps"},
	"Service":               {Version: "v1", Resource: "services"},
	"StatefulSet":           {Group: "apps", Version: "v1", Resource: "statefulsets"},
	"Pod":                   {Version: "v1", Resource: "pods"},
	"PersistentVolumeClaim": {Version: "v1", Resource: "persistentvolumeclaims"},
	"Secret":                {Version: "v1", Resource: "secrets"},
}

func (r *reconciler) reconcile(ctx context.Context, u *unstructured.Unstructured) (time.Duration, error) {
	if ready, err := r.operatorReady(ctx); err != nil || !ready {
		// No operator running: nothing acts on the installation, its finalizer included.
		return 4 * again, err
	}
	if u.GetDeletionTimestamp() != nil {
		return r.finalize(ctx, u)
	}
	if !slices.Contains(u.GetFinalizers(), finalizer) {
		u.SetFinalizers(append(u.GetFinalizers(), finalizer))
		updated, err := r.chi(u).Update(ctx, u, metav1.UpdateOptions{})
		if err != nil {
			return 0, fmt.Errorf("adding the finalizer: %w", err)
		}
		u = updated
	}
	task := taskID(u)
	st, _, _ := unstructured.NestedMap(u.Object, "status")
	if st == nil {
		st = map[string]any{}
	}
	current := st["taskID"] == task && st["generation"] == u.GetGeneration()
	if current && st["status"] == statusCompleted {
		return 0, nil
	}
	hs := hosts(layout(u))
	if !current || st["status"] != statusInProgress {
		st = started(st, task, u, len(hs))
		if err := r.setStatus(ctx, u, st); err != nil {
			return 0, err
		}
		for _, m := range manifests(u) {
			if err := r.apply(ctx, m); err != nil {
				return 0, err
			}
		}
		log.Printf("%s/%s: task %s applied, %d hosts", u.GetNamespace(), u.GetName(), task, len(hs))
	}
	ready, err := r.readyHosts(ctx, u, hs)
	if err != nil {
		return 0, err
	}
	if missing := r.missingSecret(ctx, u); missing != "" {
		log.Printf("%s/%s: %s: the hosts cannot start", u.GetNamespace(), u.GetName(), missing)
		ready = 0
	}
	st["hostsCompleted"] = int64(ready)
	if ready < len(hs) {
		return again, r.setStatus(ctx, u, st)
	}
	completed(st, task, u, hs)
	log.Printf("%s/%s: task %s completed", u.GetNamespace(), u.GetName(), task)
	return 0, r.setStatus(ctx, u, st)
}

// taskID is the change's spec.taskID, else one the operator makes for this generation.
func taskID(u *unstructured.Unstructured) string {
	if t, _, _ := unstructured.NestedString(u.Object, "spec", "taskID"); t != "" {
		return t
	}
	return fmt.Sprintf("auto-%.8s-%d", u.GetUID(), u.GetGeneration())
}

func started(st map[string]any, task string, u *unstructured.Unstructured, n int) map[string]any {
	st["status"] = statusInProgress
	st["taskID"] = task
	st["taskIDsStarted"] = appendOnce(st["taskIDsStarted"], task)
	st["generation"] = u.GetGeneration()
	st["hosts"] = int64(n)
	st["hostsCompleted"] = int64(0)
	var shards, replicas int64
	for _, c := range layout(u) {
		shards += c.shards
		replicas += c.shards * c.replicas
	}
	st["clusters"] = int64(len(layout(u)))
	st["shards"] = shards
	st["replicas"] = replicas
	return st
}

func completed(st map[string]any, task string, u *unstructured.Unstructured, hs []host) {
	st["status"] = statusCompleted
	st["taskIDsCompleted"] = appendOnce(st["taskIDsCompleted"], task)
	st["hostsUpdated"] = int64(len(hs))
	fqdns := make([]any, 0, len(hs))
	for _, h := range hs {
		fqdns = append(fqdns, fmt.Sprintf("%s.%s.svc.cluster.local", h.name(u.GetName()), u.GetNamespace()))
	}
	st["fqdns"] = fqdns
	st["endpoint"] = fmt.Sprintf("%s.%s.svc.cluster.local", serviceName(u), u.GetNamespace())
}

func appendOnce(list any, v string) []any {
	l, _ := list.([]any)
	if slices.Contains(l, any(v)) {
		return l
	}
	return append(l, v)
}

func (r *reconciler) chi(u *unstructured.Unstructured) dynamic.ResourceInterface {
	return r.client.Resource(r.gvr).Namespace(u.GetNamespace())
}

// operatorReady says whether an operator Deployment (the install bundle's and the Helm chart's
// label app=clickhouse-operator) has a ready replica and is not being deleted.
func (r *reconciler) operatorReady(ctx context.Context) (bool, error) {
	gvr := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	ds, err := r.client.Resource(gvr).List(ctx, metav1.ListOptions{LabelSelector: "app=clickhouse-operator"})
	if err != nil {
		return false, err
	}
	for _, d := range ds.Items {
		ready, _, _ := unstructured.NestedInt64(d.Object, "status", "readyReplicas")
		if ready >= 1 && d.GetDeletionTimestamp() == nil {
			return true, nil
		}
	}
	return false, nil
}

func (r *reconciler) setStatus(ctx context.Context, u *unstructured.Unstructured, st map[string]any) error {
	_ = unstructured.SetNestedField(u.Object, st, "status")
	updated, err := r.chi(u).UpdateStatus(ctx, u, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	u.Object = updated.Object
	return nil
}

// apply server-side applies one object as the operator's field manager.
func (r *reconciler) apply(ctx context.Context, m map[string]any) error {
	o := &unstructured.Unstructured{Object: m}
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	force := true
	_, err = r.client.Resource(resources[o.GetKind()]).Namespace(o.GetNamespace()).Patch(ctx, o.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: fieldManager, Force: &force})
	if err != nil {
		return fmt.Errorf("%s %s: %w", o.GetKind(), o.GetName(), err)
	}
	return nil
}

// readyHosts counts the hosts whose StatefulSet reports its one pod ready at its generation.
func (r *reconciler) readyHosts(ctx context.Context, u *unstructured.Unstructured, hs []host) (int, error) {
	n := 0
	for _, h := range hs {
		sts, err := r.client.Resource(resources["StatefulSet"]).Namespace(u.GetNamespace()).Get(ctx, h.name(u.GetName()), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return 0, err
		}
		ready, _, _ := unstructured.NestedInt64(sts.Object, "status", "readyReplicas")
		seen, _, _ := unstructured.NestedInt64(sts.Object, "status", "observedGeneration")
		if ready >= 1 && seen >= sts.GetGeneration() {
			n++
		}
	}
	return n, nil
}

// missingSecret names a Secret (or key) a user's password refers to that is not there: a real
// kubelet would not start the container.
func (r *reconciler) missingSecret(ctx context.Context, u *unstructured.Unstructured) string {
	for _, ref := range secretRefs(u) {
		s, err := r.client.Resource(resources["Secret"]).Namespace(ref[0]).Get(ctx, ref[1], metav1.GetOptions{})
		if err != nil {
			return fmt.Sprintf("secret %s/%s: %v", ref[0], ref[1], err)
		}
		if _, ok, _ := unstructured.NestedString(s.Object, "data", ref[2]); !ok {
			return fmt.Sprintf("secret %s/%s has no key %s", ref[0], ref[1], ref[2])
		}
	}
	return ""
}
