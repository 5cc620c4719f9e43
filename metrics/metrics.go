package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// BuildInfo identifies the running binary.
type BuildInfo struct {
	Version   string
	Revision  string
	GoVersion string
}

// Metrics holds tollgate's registry and collectors.
type Metrics struct {
	reg *prometheus.Registry
}

// New returns Metrics with a fresh registry holding the Go and process
// collectors and the tollgate_build_info gauge.
func New(info BuildInfo) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tollgate_build_info",
		Help: "Build information of the running tollgate binary; always 1.",
	}, []string{"version", "revision", "goversion"})
	build.WithLabelValues(info.Version, info.Revision, info.GoVersion).Set(1)
	reg.MustRegister(build)
	return &Metrics{reg: reg}
}

// Registry returns the registry, for callers that add their own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
