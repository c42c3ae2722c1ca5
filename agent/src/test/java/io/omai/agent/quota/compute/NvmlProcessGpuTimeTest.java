package io.omai.agent.quota.compute;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.agent.gpu.nvml.NvmlLayouts;
import io.omai.agent.gpu.nvml.NvmlLibrary;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class NvmlProcessGpuTimeTest {
    static final String GPU0 = "GPU-00000000-0000-4000-8000-0000000000c0";
    static final String GPU1 = "GPU-00000000-0000-4000-8000-0000000000c1";
    static final long T0 = 1_800_000_000_000_000L; // µs since the epoch

    final ScriptedNvml nvml = new ScriptedNvml(List.of(GPU0, GPU1));
    final NvmlProcessGpuTime gpuTime = new NvmlProcessGpuTime(nvml, () -> T0);

    @Test
    void theFirstCallOpensTheWindowAndTheNextReportsSmUtilTimesTheTimeCovered() throws Exception {
        assertThat(gpuTime.busySinceLastSample(GPU1)).isEmpty();
        assertThat(nvml.calls).isEmpty();

        nvml.answer(NvmlLibrary.NVML_SUCCESS, new Sample(10, T0 + 100_000, 30), new Sample(11, T0 + 100_000, 70));
        assertThat(gpuTime.busySinceLastSample(GPU1))
                .containsExactlyInAnyOrderEntriesOf(Map.of(10, 30_000_000L, 11, 70_000_000L));
        assertThat(nvml.calls).containsExactly(new Call(1, T0));

        // The next window starts at the newest timestamp NVML gave.
        nvml.answer(NvmlLibrary.NVML_SUCCESS, new Sample(10, T0 + 150_000, 100));
        assertThat(gpuTime.busySinceLastSample(GPU1)).containsExactly(Map.entry(10, 50_000_000L));
        assertThat(nvml.calls.getLast()).isEqualTo(new Call(1, T0 + 100_000));
    }

    @Test
    void severalSamplesOfOneProcessEachCoverTheTimeSinceThePreviousOne() throws Exception {
        gpuTime.busySinceLastSample(GPU0);
        nvml.answer(
                NvmlLibrary.NVML_SUCCESS,
                new Sample(7, T0 + 60_000, 10),
                new Sample(8, T0 + 90_000, 50),
                new Sample(7, T0 + 20_000, 50));
        // pid 7: 50 % of 20 ms + 10 % of the next 40 ms; pid 8: 50 % of 90 ms.
        assertThat(gpuTime.busySinceLastSample(GPU0))
                .containsExactlyInAnyOrderEntriesOf(Map.of(7, 14_000_000L, 8, 45_000_000L));
    }

    @Test
    void noProcessRanIsAnEmptyMapAndTheWindowStaysOpen() throws Exception {
        gpuTime.busySinceLastSample(GPU0);
        nvml.answer(NvmlLibrary.NVML_ERROR_NOT_FOUND);
        assertThat(gpuTime.busySinceLastSample(GPU0)).isEmpty();
        nvml.answer(NvmlLibrary.NVML_SUCCESS, new Sample(3, T0 + 200_000, 25));
        assertThat(gpuTime.busySinceLastSample(GPU0)).containsExactly(Map.entry(3, 50_000_000L));
        assertThat(nvml.calls).extracting(Call::lastSeen).containsExactly(T0, T0);
    }

    @Test
    void aBufferTooSmallIsGrownToWhatNvmlAsksFor() throws Exception {
        gpuTime.busySinceLastSample(GPU0);
        nvml.answerTooSmall(100);
        List<Sample> many = new ArrayList<>();
        for (int pid = 1; pid <= 100; pid++) {
            many.add(new Sample(pid, T0 + 10_000, 1));
        }
        nvml.answer(NvmlLibrary.NVML_SUCCESS, many.toArray(Sample[]::new));
        Map<Integer, Long> busy = gpuTime.busySinceLastSample(GPU0);
        assertThat(busy).hasSize(100).containsEntry(100, 100_000L);
        assertThat(nvml.capacities).containsExactly(64, 128);
    }

    @Test
    void otherNvmlErrorsAndUnknownGpusAreUnavailableWithNvmlsReason() throws Exception {
        gpuTime.busySinceLastSample(GPU0);
        nvml.answer(NvmlLibrary.NVML_ERROR_GPU_IS_LOST);
        assertThatThrownBy(() -> gpuTime.busySinceLastSample(GPU0))
                .isInstanceOf(ProcessGpuTime.GpuTimeUnavailableException.class)
                .hasMessage("nvmlDeviceGetProcessUtilization on " + GPU0 + ": error 15 (nvmlReturn_t 15)");
        assertThatThrownBy(() -> gpuTime.busySinceLastSample("GPU-nope"))
                .isInstanceOf(ProcessGpuTime.GpuTimeUnavailableException.class)
                .hasMessage("NVML shows no GPU with UUID GPU-nope");
    }

    record Sample(int pid, long timeStamp, int smUtil) {}

    record Call(int device, long lastSeen) {}

    /** NVML with a list of GPUs whose process-utilisation answers the test scripts. */
    static final class ScriptedNvml implements NvmlLibrary {
        private final List<String> uuids;
        private final Deque<Object[]> answers = new ArrayDeque<>();
        final List<Call> calls = new ArrayList<>();
        final List<Integer> capacities = new ArrayList<>();

        ScriptedNvml(List<String> uuids) {
            this.uuids = uuids;
        }

        void answer(int rc, Sample... samples) {
            answers.add(new Object[] {rc, samples, samples.length});
        }

        void answerTooSmall(int needed) {
            answers.add(new Object[] {NVML_ERROR_INSUFFICIENT_SIZE, new Sample[0], needed});
        }

        @Override
        @SuppressWarnings("restricted") // sizes the caller's buffer as NVML would: capacity samples
        public int nvmlDeviceGetProcessUtilization(
                MemorySegment device,
                MemorySegment utilization,
                MemorySegment processSamplesCount,
                long lastSeenTimeStamp) {
            calls.add(new Call((int) device.address() - 1, lastSeenTimeStamp));
            int capacity = processSamplesCount.get(JAVA_INT, 0);
            capacities.add(capacity);
            Object[] a = answers.removeFirst();
            int rc = (int) a[0];
            Sample[] samples = (Sample[]) a[1];
            int needed = (int) a[2];
            if (rc == NVML_ERROR_INSUFFICIENT_SIZE || (rc == NVML_SUCCESS && capacity < needed)) {
                processSamplesCount.set(JAVA_INT, 0, needed);
                return NVML_ERROR_INSUFFICIENT_SIZE;
            }
            if (rc != NVML_SUCCESS) {
                return rc;
            }
            MemorySegment buffer =
                    utilization.reinterpret(capacity * NvmlLayouts.NVML_PROCESS_UTILIZATION_SAMPLE.byteSize());
            for (int i = 0; i < samples.length; i++) {
                long at = i * NvmlLayouts.NVML_PROCESS_UTILIZATION_SAMPLE.byteSize();
                buffer.set(JAVA_INT, at, samples[i].pid());
                buffer.set(JAVA_LONG, at + 8, samples[i].timeStamp());
                buffer.set(JAVA_INT, at + 16, samples[i].smUtil());
            }
            processSamplesCount.set(JAVA_INT, 0, samples.length);
            return NVML_SUCCESS;
        }

        @Override
        public int nvmlDeviceGetCount_v2(MemorySegment deviceCount) {
            deviceCount.set(JAVA_INT, 0, uuids.size());
            return NVML_SUCCESS;
        }

        @Override
        public int nvmlDeviceGetHandleByIndex_v2(int index, MemorySegment device) {
            device.set(ADDRESS, 0, MemorySegment.ofAddress(index + 1));
            return NVML_SUCCESS;
        }

        @Override
        public int nvmlDeviceGetUUID(MemorySegment device, MemorySegment uuid, int length) {
            uuid.setString(0, uuids.get((int) device.address() - 1));
            return NVML_SUCCESS;
        }

        @Override
        public String nvmlErrorString(int result) {
            return "error " + result;
        }

        @Override
        public int nvmlInit_v2() {
            return NVML_SUCCESS;
        }

        @Override
        public int nvmlShutdown() {
            return NVML_SUCCESS;
        }

        @Override
        public int nvmlDeviceGetName(MemorySegment device, MemorySegment name, int length) {
            return NVML_ERROR_NOT_SUPPORTED;
        }

        @Override
        public int nvmlDeviceGetIndex(MemorySegment device, MemorySegment index) {
            return NVML_ERROR_NOT_SUPPORTED;
        }

        @Override
        public int nvmlDeviceGetMinorNumber(MemorySegment device, MemorySegment minorNumber) {
            return NVML_ERROR_NOT_SUPPORTED;
        }

        @Override
        public int nvmlDeviceGetMemoryInfo(MemorySegment device, MemorySegment memory) {
            return NVML_ERROR_NOT_SUPPORTED;
        }

        @Override
        public int nvmlDeviceGetNumaNodeId(MemorySegment device, MemorySegment node) {
            return NVML_ERROR_NOT_SUPPORTED;
        }

        @Override
        public int nvmlEventSetCreate(MemorySegment set) {
            return NVML_ERROR_NOT_SUPPORTED;
        }

        @Override
        public int nvmlDeviceRegisterEvents(MemorySegment device, long eventTypes, MemorySegment set) {
            return NVML_ERROR_NOT_SUPPORTED;
        }

        @Override
        public int nvmlEventSetWait_v2(MemorySegment set, MemorySegment data, int timeoutms) {
            return NVML_ERROR_NOT_SUPPORTED;
        }

        @Override
        public int nvmlEventSetFree(MemorySegment set) {
            return NVML_ERROR_NOT_SUPPORTED;
        }
    }
}
