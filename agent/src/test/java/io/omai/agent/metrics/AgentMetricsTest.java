package io.omai.agent.metrics;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.grpc.BindableService;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.ServerInterceptors;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.StreamObserver;
import io.omai.agent.deviceplugin.v1beta1.AllocateRequest;
import io.omai.agent.deviceplugin.v1beta1.AllocateResponse;
import io.omai.agent.deviceplugin.v1beta1.DevicePluginGrpc;
import io.omai.agent.deviceplugin.v1beta1.DevicePluginOptions;
import io.omai.agent.deviceplugin.v1beta1.Empty;
import io.omai.agent.deviceplugin.v1beta1.PreferredAllocationRequest;
import io.omai.agent.deviceplugin.v1beta1.PreferredAllocationResponse;
import io.omai.agent.schedapi.v1.FitRequest;
import io.omai.agent.schedapi.v1.FitResponse;
import io.omai.agent.schedapi.v1.NodeAgentGrpc;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class AgentMetricsTest {
    private final MetricsFixtures.Nanos nanos = new MetricsFixtures.Nanos();
    private final AgentMetrics metrics = new AgentMetrics("node-1", nanos::get);

    @AfterEach
    void stop() {
        metrics.close();
    }

    @Test
    void kubeletCountersReadTheRegistrarAtScrapeTime() {
        AtomicLong registrations = new AtomicLong(1);
        AtomicLong restarts = new AtomicLong();
        metrics.bindKubelet(new KubeletMetricsSource() {
            @Override
            public long registrations() {
                return registrations.get();
            }

            @Override
            public long kubeletRestarts() {
                return restarts.get();
            }
        });
        Scrape first = Scrape.of(metrics);
        assertThat(first.get("omai_kubelet_registrations_total")).isEqualTo(1);
        assertThat(first.get("omai_kubelet_restarts_total")).isZero();

        registrations.set(3);
        restarts.set(2);
        Scrape later = Scrape.of(metrics);
        assertThat(later.get("omai_kubelet_registrations_total")).isEqualTo(3);
        assertThat(later.get("omai_kubelet_restarts_total")).isEqualTo(2);
    }

    @Test
    void aKubeletSourceNobodyElseHoldsKeepsCounting() {
        metrics.bindKubelet(
                new KubeletMetricsSource() { // as NodeAgentSources binds it: no other reference
                    @Override
                    public long registrations() {
                        return 5;
                    }

                    @Override
                    public long kubeletRestarts() {
                        return 4;
                    }
                });
        for (int i = 0; i < 3; i++) {
            System.gc(); // Micrometer holds function-counter state weakly: it must not be the only holder
        }
        Scrape scrape = Scrape.of(metrics);
        assertThat(scrape.get("omai_kubelet_registrations_total")).isEqualTo(5);
        assertThat(scrape.get("omai_kubelet_restarts_total")).isEqualTo(4);
    }

    @Test
    void allocatePreferredAllocationAndFitAreTimedOnTheirServersOtherCallsAreNot() throws Exception {
        BindableService plugin = new DevicePluginGrpc.DevicePluginImplBase() {
            @Override
            public void allocate(AllocateRequest request, StreamObserver<AllocateResponse> response) {
                nanos.advanceSeconds(0.003);
                response.onNext(AllocateResponse.getDefaultInstance());
                response.onCompleted();
            }

            @Override
            public void getPreferredAllocation(
                    PreferredAllocationRequest request, StreamObserver<PreferredAllocationResponse> response) {
                nanos.advanceSeconds(0.0004);
                response.onError(io.grpc.Status.INVALID_ARGUMENT.asException()); // refusals are timed too
            }

            @Override
            public void getDevicePluginOptions(Empty request, StreamObserver<DevicePluginOptions> response) {
                response.onNext(DevicePluginOptions.getDefaultInstance());
                response.onCompleted();
            }
        };
        BindableService scheduler = new NodeAgentGrpc.NodeAgentImplBase() {
            @Override
            public void fit(FitRequest request, StreamObserver<FitResponse> response) {
                nanos.advanceSeconds(0.0002);
                response.onNext(FitResponse.getDefaultInstance());
                response.onCompleted();
            }
        };
        // the device plugin's way (NodeAgent wraps its service) and the scheduler API's (a builder interceptor)
        String pluginName = InProcessServerBuilder.generateName();
        Server pluginServer = InProcessServerBuilder.forName(pluginName)
                .directExecutor()
                .addService(ServerInterceptors.intercept(plugin, metrics.rpcLatency()))
                .build()
                .start();
        String schedulerName = InProcessServerBuilder.generateName();
        Server schedulerServer = InProcessServerBuilder.forName(schedulerName)
                .directExecutor()
                .addService(scheduler)
                .intercept(metrics.rpcLatency())
                .build()
                .start();
        ManagedChannel pluginChannel =
                InProcessChannelBuilder.forName(pluginName).directExecutor().build();
        ManagedChannel schedulerChannel =
                InProcessChannelBuilder.forName(schedulerName).directExecutor().build();
        try {
            var kubelet = DevicePluginGrpc.newBlockingStub(pluginChannel);
            kubelet.allocate(AllocateRequest.getDefaultInstance());
            kubelet.allocate(AllocateRequest.getDefaultInstance());
            assertThatThrownBy(() -> kubelet.getPreferredAllocation(PreferredAllocationRequest.getDefaultInstance()))
                    .isInstanceOf(io.grpc.StatusRuntimeException.class);
            kubelet.getDevicePluginOptions(Empty.getDefaultInstance());
            NodeAgentGrpc.newBlockingStub(schedulerChannel).fit(FitRequest.getDefaultInstance());
        } finally {
            pluginChannel.shutdownNow();
            schedulerChannel.shutdownNow();
            pluginServer.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            schedulerServer.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }

        Scrape scrape = Scrape.of(metrics);
        assertThat(scrape.get("omai_allocate_duration_seconds_count")).isEqualTo(2);
        assertThat(scrape.get("omai_allocate_duration_seconds_sum")).isCloseTo(0.006, within(1e-9));
        assertThat(scrape.get("omai_allocate_duration_seconds_bucket", "le", "0.0025"))
                .isZero();
        assertThat(scrape.get("omai_allocate_duration_seconds_bucket", "le", "0.005"))
                .isEqualTo(2);
        assertThat(scrape.get("omai_preferred_allocation_duration_seconds_count"))
                .isEqualTo(1);
        assertThat(scrape.get("omai_preferred_allocation_duration_seconds_bucket", "le", "5.0E-4"))
                .isEqualTo(1);
        assertThat(scrape.get("omai_fit_duration_seconds_count")).isEqualTo(1);
        assertThat(scrape.get("omai_fit_duration_seconds_bucket", "le", "2.5E-4"))
                .isEqualTo(1);
        assertThat(scrape.get("omai_fit_duration_seconds_bucket", "le", "1.0E-4"))
                .isZero();
    }

    @Test
    void controllerTicksFillTheirHistogram() {
        metrics.controllerTickRecorder().accept(Duration.ofMillis(3).toNanos());
        metrics.controllerTickRecorder().accept(Duration.ofMillis(40).toNanos());

        Scrape scrape = Scrape.of(metrics);
        assertThat(scrape.get("omai_controller_tick_duration_seconds_count")).isEqualTo(2);
        assertThat(scrape.get("omai_controller_tick_duration_seconds_bucket", "le", "0.0025"))
                .isZero();
        assertThat(scrape.get("omai_controller_tick_duration_seconds_bucket", "le", "0.005"))
                .isEqualTo(1);
        assertThat(scrape.get("omai_controller_tick_duration_seconds_bucket", "le", "0.05"))
                .isEqualTo(2);
        assertThat(scrape.get("omai_controller_tick_duration_seconds_bucket", "le", "+Inf"))
                .isEqualTo(2);
    }

    @Test
    void auditFindingsCountPerReasonAndPodAndIdlePodsLoseTheirSeries() {
        AuditMetrics audit = metrics.audit();
        audit.recordViolation(AuditMetrics.Reason.NO_SHIM, "team-a", "rogue-0");
        audit.recordViolation(AuditMetrics.Reason.NO_SHIM, "team-a", "rogue-0");
        audit.recordViolation(AuditMetrics.Reason.MEMORY_OVER_QUOTA, "team-b", "big-1");

        Scrape scrape = Scrape.of(metrics);
        assertThat(scrape.get(
                        "omai_audit_findings_total", "finding", "no_shim", "namespace", "team-a", "pod", "rogue-0"))
                .isEqualTo(2);
        assertThat(scrape.get("omai_audit_findings_total", "finding", "memory_over_quota", "pod", "big-1"))
                .isEqualTo(1);

        nanos.advanceSeconds((double) (AuditMetrics.DEFAULT_RETENTION.toSeconds() - 60));
        audit.recordViolation(AuditMetrics.Reason.MEMORY_OVER_QUOTA, "team-b", "big-1");
        nanos.advanceSeconds(120);

        Scrape later = Scrape.of(metrics);
        assertThat(later.anySampleLabelled("pod", "rogue-0"))
                .as("no finding for an hour")
                .isFalse();
        assertThat(later.get("omai_audit_findings_total", "pod", "big-1")).isEqualTo(2);
    }

    @Test
    void aNodeNameIsRequiredForTheGpuSeriesNodeLabel() {
        assertThatThrownBy(() -> AgentMetrics.create(" "))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("node name is empty");
    }

    @Test
    void aFailingSourceKeepsTheRestOfTheScrape() {
        metrics.bindGpus(() -> {
            throw new IllegalStateException("ledger closed");
        });
        metrics.controllerTickRecorder().accept(1_000_000);
        assertThat(Scrape.of(metrics).get("omai_controller_tick_duration_seconds_count"))
                .isEqualTo(1);
    }

    @Test
    void timersHaveOneHistogramFamilyAndNoMaxGaugeBesideIt() {
        metrics.controllerTickRecorder().accept(1_000_000);
        metrics.bindJvm();
        Scrape scrape = Scrape.of(metrics);
        assertThat(scrape.text).contains("# TYPE omai_controller_tick_duration_seconds histogram");
        assertThat(scrape.text)
                .as("Micrometer's _max gauge repeats the histogram's help under a second family")
                .doesNotContain("_seconds_max");
    }

    @Test
    void buildInfoJvmProcessReaperAndLoopSeriesNameTheNode() {
        metrics.bindJvm();
        metrics.bindReaper(() -> 3, () -> 4096);
        long[] passAge = {2};
        metrics.bindLoops(() -> java.util.Map.of("dead-process-reaper", (double) passAge[0]));
        Scrape scrape = Scrape.of(metrics);
        assertThat(scrape.get(
                        "omai_build_info",
                        "node",
                        "node-1",
                        "java_version",
                        Runtime.version().toString()))
                .isEqualTo(1);
        assertThat(scrape.get("omai_reaper_reclaims_total", "node", "node-1")).isEqualTo(3);
        assertThat(scrape.get("omai_reaper_reclaimed_bytes_total", "node", "node-1"))
                .isEqualTo(4096);
        assertThat(scrape.get("omai_loop_last_pass_age_seconds", "loop", "dead-process-reaper", "node", "node-1"))
                .isEqualTo(2);
        assertThat(scrape.get("process_start_time_seconds", "node", "node-1")).isPositive();
        assertThat(scrape.count("jvm_memory_used_bytes", "area", "heap")).isPositive();
        assertThat(scrape.get("jvm_threads_live_threads", "node", "node-1")).isPositive();
        assertThat(scrape.count("process_files_open_files")).isEqualTo(1);
        passAge[0] = 40;
        assertThat(Scrape.of(metrics).get("omai_loop_last_pass_age_seconds", "loop", "dead-process-reaper"))
                .isEqualTo(40);
    }
}
