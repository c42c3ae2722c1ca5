package io.omai.ibvf.kernel;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.ibvf.error.Errno;
import io.omai.ibvf.error.KernelRejectedException;
import io.omai.ibvf.testing.FakeKernel;
import io.omai.ibvf.testing.FakePf;
import io.omai.ibvf.testing.FakeSysfs;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TimeLimitedSysfsTest {

    @TempDir
    Path root;

    @Test
    void aWriteThatNeverReturns_becomesEtimedoutNamingPathAndValue() {
        CountDownLatch release = new CountDownLatch(1);
        TimeLimitedSysfs sysfs = new TimeLimitedSysfs(new HangingWrites(release), Duration.ofMillis(50));
        try {
            assertThatThrownBy(() -> sysfs.write("bus/pci/devices/0000:3b:00.0/sriov_numvfs", "8"))
                    .isInstanceOfSatisfying(KernelRejectedException.class, e -> {
                        assertThat(e.errno()).isEqualTo(Errno.ETIMEDOUT);
                        assertThat(e.target()).isEqualTo("bus/pci/devices/0000:3b:00.0/sriov_numvfs");
                        assertThat(e.value()).isEqualTo("8");
                    })
                    .hasMessageContaining("still blocked after PT0.05S");
        } finally {
            release.countDown();
        }
    }

    @Test
    void kernelRefusals_passThroughWithTheirOwnType() {
        FakeSysfs tree = FakeSysfs.create(root);
        FakePf ib = tree.connectX6Ib(0, 16);
        FakeKernel kernel = new FakeKernel(tree);
        TimeLimitedSysfs sysfs = new TimeLimitedSysfs(kernel, Duration.ofMinutes(2));
        String numvfs = "bus/pci/devices/" + ib.address() + "/sriov_numvfs";

        sysfs.write(numvfs, "2");

        assertThat(sysfs.read(numvfs)).contains("2");
        assertThatThrownBy(() -> sysfs.write(numvfs, "4"))
                .isInstanceOfSatisfying(
                        KernelRejectedException.class,
                        e -> assertThat(e.errno()).isEqualTo(Errno.EBUSY));
    }

    /** A sysfs whose writes block until released, like a store on a hung device. */
    private record HangingWrites(CountDownLatch release) implements Sysfs {
        @Override
        public void write(String path, String value) {
            try {
                release.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        @Override
        public Optional<String> read(String path) {
            return Optional.empty();
        }

        @Override
        public List<String> list(String directory) {
            return List.of();
        }

        @Override
        public boolean exists(String path) {
            return false;
        }

        @Override
        public Optional<String> linkTargetName(String path) {
            return Optional.empty();
        }

        @Override
        public String canonicalPath(String path) {
            return path;
        }
    }
}
