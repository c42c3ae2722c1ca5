package io.omai.agent.metrics;

/**
 * A binder whose series depend on what exists now (allocations, GPUs, VFs): before every scrape it reads its
 * owner once and adds or removes series, so values are current and gone things leave no series behind.
 */
@FunctionalInterface
interface ScrapeRefresh {
    void refresh();
}
