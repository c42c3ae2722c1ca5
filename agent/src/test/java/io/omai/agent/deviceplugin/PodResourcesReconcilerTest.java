package io.omai.agent.deviceplugin;

import static org.assertj.core.api.Assertions.assertThat;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.omai.agent.config.ConfigLoader;
import io.omai.agent.gpu.FakeNvml;
import io.omai.agent.ledger.AllocationLedger;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

class PodResourcesReconcilerTest {
    @TempDir
    Path dir;

    @Test
    void aMissingPodResourcesSocketIsOneWarningWithoutAStackTraceNotOnePerRound() throws Exception {
        Logger logger = (Logger) LoggerFactory.getLogger(PodResourcesReconciler.class);
        ListAppender<ILoggingEvent> appender = new ListAppender<>();
        appender.start();
        logger.addAppender(appender);
        try (AllocationLedger ledger = AllocationLedger.open(
                        FakeNvml.gpus(1, 1L << 30, 1),
                        ConfigLoader.defaults().sharing(),
                        dir.resolve("state"),
                        Clock.systemUTC());
                PodResourcesReconciler reconciler = new PodResourcesReconciler(
                        dir.resolve("absent/kubelet.sock"),
                        "omai.io/milli-gpu",
                        ledger,
                        Duration.ofMillis(100),
                        Duration.ofSeconds(60))) {
            for (int round = 0; round < 5; round++) {
                reconciler.tryReconcile();
            }
        } finally {
            logger.detachAppender(appender);
        }
        List<ILoggingEvent> unavailable = appender.list.stream()
                .filter(e -> e.getFormattedMessage().contains("event=pod_resources_unavailable"))
                .toList();
        assertThat(unavailable).singleElement().satisfies(event -> {
            assertThat(event.getThrowableProxy()).isNull();
            assertThat(event.getFormattedMessage())
                    .contains("code=UNAVAILABLE", "absent/kubelet.sock")
                    .doesNotContain("\n");
        });
    }
}
