package io.omai.agent.metrics;

import java.lang.management.ManagementFactory;

/**
 * What the metrics registry costs, with ({@code jvm}) or without ({@code none}) the JVM and process binders: loaded
 * classes, heap and metaspace after a GC, scrape size and time per scrape. The figures in docs/benchmarks.md
 * ("Metrics: what the JVM binders and a scrape cost") come from it:
 *
 * <pre>{@code
 * java -Xmx512m -cp "agent/target/test-classes:agent/target/omai-agent.jar:agent/target/lib/*" \
 *     io.omai.agent.metrics.MetricsFootprint jvm
 * }</pre>
 */
public final class MetricsFootprint {
    private MetricsFootprint() {}

    public static void main(String[] args) {
        if (args.length != 1 || !(args[0].equals("jvm") || args[0].equals("none"))) {
            System.err.println("usage: MetricsFootprint jvm|none (with or without the JVM and process binders)");
            System.exit(2);
        }
        try (AgentMetrics metrics = AgentMetrics.create("node-1")) {
            if (args[0].equals("jvm")) {
                metrics.bindJvm();
            }
            String text = "";
            for (int i = 0; i < 200; i++) {
                text = metrics.scrape();
            }
            long start = System.nanoTime();
            for (int i = 0; i < 1000; i++) {
                text = metrics.scrape();
            }
            long microsPerScrape = (System.nanoTime() - start) / 1000 / 1000;
            System.gc();
            long metaspace = ManagementFactory.getMemoryPoolMXBeans().stream()
                    .filter(pool -> pool.getName().equals("Metaspace"))
                    .mapToLong(pool -> pool.getUsage().getUsed())
                    .sum();
            System.out.printf(
                    "binders=%s classes=%d heap_used_kib=%d metaspace_kib=%d scrape_bytes=%d scrape_us=%d%n",
                    args[0],
                    ManagementFactory.getClassLoadingMXBean().getLoadedClassCount(),
                    ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed() / 1024,
                    metaspace / 1024,
                    text.length(),
                    microsPerScrape);
        }
    }
}
