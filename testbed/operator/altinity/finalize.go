package main

import (
	"context"
	"fmt"
	"log"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// finalize deletes what the installation made (its claims too: reclaimPolicy Delete is the
// default) and, once its pods are gone, removes the finalizer.
func (r *reconciler) finalize(ctx context.Context, u *unstructured.Unstructured) (time.Duration, error) {
	if !slices.Contains(u.GetFinalizers(), finalizer) {
		return 0, nil
	}
	if st, _, _ := unstructured.NestedString(u.Object, "status", "status"); st != statusTerminate {
		_ = unstructured.SetNestedField(u.Object, statusTerminate, "status", "status")
		if updated, err := r.chi(u).UpdateStatus(ctx, u, metav1.UpdateOptions{}); err == nil {
			u = updated
		}
	}
	sel := metav1.ListOptions{LabelSelector: fmt.Sprintf("clickhouse.altinity.com/app=chop,clickhouse.altinity.com/chi=%s", u.GetName())}
	for _, kind := range []string{"StatefulSet", "Service", "ConfigMap"} {
		if err := r.client.Resource(resources[kind]).Namespace(u.GetNamespace()).DeleteCollection(ctx, metav1.DeleteOptions{}, sel); err != nil {
			return 0, fmt.Errorf("deleting %ss: %w", kind, err)
		}
	}
	pods, err := r.client.Resource(resources["Pod"]).Namespace(u.GetNamespace()).List(ctx, sel)
	if err != nil {
		return 0, err
	}
	if len(pods.Items) > 0 {
		return again, nil
	}
	if err := r.client.Resource(resources["PersistentVolumeClaim"]).Namespace(u.GetNamespace()).DeleteCollection(ctx, metav1.DeleteOptions{}, sel); err != nil {
		return 0, fmt.Errorf("deleting claims: %w", err)
	}
	u.SetFinalizers(slices.DeleteFunc(u.GetFinalizers(), func(f string) bool { return f == finalizer }))
	if _, err := r.chi(u).Update(ctx, u, metav1.UpdateOptions{}); err != nil {
		return 0, fmt.Errorf("removing the finalizer: %w", err)
	}
	log.Printf("%s/%s: deleted, finalizer removed", u.GetNamespace(), u.GetName())
	return 0, nil
}
