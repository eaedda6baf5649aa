package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"slices"
	"strings"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart"
	"helm.sh/helm/v4/pkg/chart/loader"
	"helm.sh/helm/v4/pkg/cli"
	"helm.sh/helm/v4/pkg/kube"
	"helm.sh/helm/v4/pkg/storage/driver"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/record"
)

type reconciler struct {
	client     dynamic.Interface
	recorder   record.EventRecorder
	kubeconfig string
	// The generation last applied, per resource: a status write or a resync of an applied
	// generation does not install the chart again.
	applied map[string]int64
}

const (
	phaseLoading   = "Loading"
	phaseCompleted = "Completed"
	phaseInvalid   = "Invalid Config"
)

func (r *reconciler) reconcile(ctx context.Context, u *unstructured.Unstructured) error {
	if u.GetDeletionTimestamp() != nil {
		return r.finalize(ctx, u)
	}
	if !slices.Contains(u.GetFinalizers(), finalizer) {
		u.SetFinalizers(append(u.GetFinalizers(), finalizer))
		updated, err := r.res(u).Update(ctx, u, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("adding the finalizer: %w", err)
		}
		u = updated
	}
	key := u.GetNamespace() + "/" + u.GetName()
	if phase(u) == phaseCompleted && r.applied[key] == u.GetGeneration() {
		return nil
	}
	r.event(u, "Reconciling", "Reconciling")
	r.event(u, "LoadingConfig", "Loading desired configuration")
	if err := r.setPhase(ctx, u, phaseLoading); err != nil {
		return err
	}
	if err := r.apply(u); err != nil {
		log.Printf("%s/%s: %v", u.GetNamespace(), u.GetName(), err)
		if serr := r.setPhase(ctx, u, phaseInvalid); serr != nil {
			return serr
		}
		r.event(u, "ApplyFailed", "Invalid config for apply")
		return err
	}
	r.applied[key] = u.GetGeneration()
	r.event(u, "Completed", "Completed reconcile successfully")
	return r.setPhase(ctx, u, phaseCompleted)
}

func phase(u *unstructured.Unstructured) string {
	p, _, _ := unstructured.NestedString(u.Object, "status", "phase")
	return p
}

func (r *reconciler) res(u *unstructured.Unstructured) dynamic.ResourceInterface {
	return r.client.Resource(gvr).Namespace(u.GetNamespace())
}

func (r *reconciler) setPhase(ctx context.Context, u *unstructured.Unstructured, p string) error {
	if phase(u) == p {
		return nil
	}
	_ = unstructured.SetNestedField(u.Object, p, "status", "phase")
	updated, err := r.res(u).UpdateStatus(ctx, u, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("status.phase %q: %w", p, err)
	}
	u.Object = updated.Object
	log.Printf("%s/%s: phase %s", u.GetNamespace(), u.GetName(), p)
	return nil
}

// helm is Helm's SDK for namespace ns with the `secrets` storage driver, as the W&B operator
// v1.22.0 configures it (Helm 4, the major version it links).
func (r *reconciler) helm(ns string) (*action.Configuration, error) {
	settings := cli.New()
	settings.KubeConfig = r.kubeconfig
	settings.SetNamespace(ns)
	cfg := new(action.Configuration)
	if err := cfg.Init(settings.RESTClientGetter(), ns, "secret"); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (r *reconciler) apply(u *unstructured.Unstructured) error {
	ch, err := loadChart(u)
	if err != nil {
		return err
	}
	values, _, _ := unstructured.NestedMap(u.Object, "spec", "values")
	if values == nil {
		values = map[string]any{}
	}
	cfg, err := r.helm(u.GetNamespace())
	if err != nil {
		return err
	}
	_, err = action.NewHistory(cfg).Run(u.GetName())
	if errors.Is(err, driver.ErrReleaseNotFound) {
		i := action.NewInstall(cfg)
		i.ReleaseName = u.GetName()
		i.Namespace = u.GetNamespace()
		// The operator waits for hooks only, never for the workloads.
		i.WaitStrategy = kube.HookOnlyStrategy
		_, err = i.Run(ch, values)
		return err
	}
	if err != nil {
		return err
	}
	up := action.NewUpgrade(cfg)
	up.Namespace = u.GetNamespace()
	up.WaitStrategy = kube.HookOnlyStrategy
	_, err = up.Run(u.GetName(), ch, values)
	return err
}

// loadChart reads spec.chart: a local archive (`path`), as the operator does when air-gapped.
func loadChart(u *unstructured.Unstructured) (chart.Charter, error) {
	path, _, _ := unstructured.NestedString(u.Object, "spec", "chart", "path")
	if path == "" {
		url, _, _ := unstructured.NestedString(u.Object, "spec", "chart", "url")
		return nil, fmt.Errorf("air-gapped: the chart repository %q cannot be reached; set spec.chart.path", url)
	}
	if !strings.HasSuffix(path, ".tgz") {
		return nil, fmt.Errorf("spec.chart.path %q is not a .tgz", path)
	}
	return loader.Load(path)
}

func (r *reconciler) finalize(ctx context.Context, u *unstructured.Unstructured) error {
	if !slices.Contains(u.GetFinalizers(), finalizer) {
		return nil
	}
	cfg, err := r.helm(u.GetNamespace())
	if err != nil {
		return err
	}
	un := action.NewUninstall(cfg)
	un.WaitStrategy = kube.StatusWatcherStrategy
	un.Timeout = 600 * time.Second
	if _, err := un.Run(u.GetName()); err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
		return fmt.Errorf("helm uninstall: %w", err)
	}
	u.SetFinalizers(slices.DeleteFunc(u.GetFinalizers(), func(f string) bool { return f == finalizer }))
	if _, err := r.res(u).Update(ctx, u, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("removing the finalizer: %w", err)
	}
	log.Printf("%s/%s: uninstalled, finalizer removed", u.GetNamespace(), u.GetName())
	return nil
}
