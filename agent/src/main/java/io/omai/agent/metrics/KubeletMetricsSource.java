package io.omai.agent.metrics;

/** The device plugin's dealings with kubelet, as cumulative counts read at scrape time. */
public interface KubeletMetricsSource {
    /** Successful registrations with kubelet since the agent started. */
    long registrations();

    /** kubelet restarts the agent noticed (a new kubelet socket or its own socket removed, then re-registered). */
    long kubeletRestarts();
}
