package io.omai.harness.adversarial;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.omai.agent.cli.OmaiCommand;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.ControlSnapshot;
import io.omai.agent.quota.shm.UsageSnapshot;
import io.omai.simulator.kubelet.KubeletSimulator;
import io.omai.simulator.launcher.ContainerLauncher;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * The control file holds a container's limits; the container must not change them. From inside, as root without
 * capabilities, every way to write, chmod, remount or unmount it fails (EROFS, EPERM). On the host, {@code omai set}
 * is refused while the agent owns the allocation: the seqlock has one writer. A container process of a non-root
 * uid still opens its usage file read-write through its bind mount and is held to its quota. Needs root.
 */
class ControlFileAttackTest {
    private static final Duration PATIENCE = Duration.ofSeconds(30);

    @TempDir
    static Path root;

    private static HostileTenantsNode node;
    private static KubeletSimulator.Admission victim;

    @BeforeAll
    static void start() throws Exception {
        Optional<String> unavailable = ContainerLauncher.mountNamespaceUnavailable();
        assumeTrue(unavailable.isEmpty(), () -> "skipped: " + unavailable.orElseThrow());
        node = new HostileTenantsNode(root, Duration.ofMillis(500));
        victim = node.admit("team-a", "infer-0", 250);
        node.start(victim, List.of("/bin/sh", "-c", "\"$0\" alloc alloc 1GiB duty kernel 600 20", node.workload()))
                .await("op=alloc", PATIENCE);
    }

    @AfterAll
    static void stop() throws Exception {
        if (node != null) {
            node.close();
        }
    }

    @AfterEach
    void theOtherTenantIsUnharmed() throws Exception {
        node.assertUnharmed(victim);
    }

    private static ControlSnapshot control(KubeletSimulator.Admission admission) throws Exception {
        try (AllocationFiles files = AllocationFiles.openReadOnly(node.allocationDir(admission))) {
            return files.control().read();
        }
    }

    @Test
    void rootWithoutCapabilitiesCannotWriteChmodRemountOrUnmountTheControlFile() throws Exception {
        KubeletSimulator.Admission attacker = node.admit("team-b", "tamper-0", 250);
        ControlSnapshot before = control(attacker);
        String script = """
                echo "caps=$(grep CapEff /proc/self/status | tr -d '\\t')"
                try() { name=$1; shift; if out=$("$@" 2>&1); then echo "$name=succeeded"; else echo "$name=failed: $out"; fi; }
                try write sh -c 'printf "\\377\\377\\377\\377" | dd of=/run/omai/control bs=1 seek=256 count=4 conv=notrunc'
                try truncate sh -c ': > /run/omai/control'
                try chmod chmod 0666 /run/omai/control
                try remount mount -o remount,bind,rw /run/omai/control
                try umount umount /run/omai/control
                try replace sh -c 'rm -f /run/omai/control && echo x > /run/omai/control'
                echo "mount-after=$(grep ' /run/omai/control ' /proc/self/mountinfo | cut -d' ' -f6)"
                echo done
                """;
        Container attack = node.start(
                attacker, List.of("setpriv", "--bounding-set=-all", "--inh-caps=-all", "--", "/bin/sh", "-c", script));
        attack.await("done", PATIENCE);
        String output = attack.output();

        assertThat(output).contains("caps=CapEff:0000000000000000").doesNotContain("=succeeded");
        assertThat(output)
                .containsPattern("write=failed: .*Read-only file system")
                .containsPattern("truncate=failed: .*Read-only file system")
                .containsPattern("chmod=failed: .*Read-only file system")
                .contains("remount=failed") // mount(8) words EPERM variously; the mount table below is the proof
                .containsPattern("umount=failed: .*(permission denied|must be superuser|Operation not permitted)")
                .containsPattern("replace=failed: .*(busy|Read-only|Permission denied)")
                .containsPattern("mount-after=ro(,|$)");
        ControlSnapshot after = control(attacker);
        assertThat(after.epoch()).as("no update").isEqualTo(before.epoch());
        assertThat(after.devices().get(0).memoryLimitBytes())
                .isEqualTo(before.devices().get(0).memoryLimitBytes());
        assertThat(after.devices().get(0).uuid())
                .isEqualTo(before.devices().get(0).uuid());
    }

    @Test
    void omaiSetIsRefusedWhileTheAgentOwnsTheAllocation() throws Exception {
        ControlSnapshot before = control(victim);
        CommandLine cli = OmaiCommand.commandLine();
        StringWriter err = new StringWriter();
        cli.setErr(new PrintWriter(err));
        int exit = cli.execute(
                "set",
                node.allocationDir(victim).toString(),
                "--device",
                "uuid=" + before.devices().get(0).uuid() + ",memory=16GiB");

        assertThat(exit).as(err.toString()).isEqualTo(2);
        assertThat(err.toString()).contains("has a writer already", "pid " + node.agent.pid());
        assertThat(control(victim).devices().get(0).memoryLimitBytes())
                .isEqualTo(before.devices().get(0).memoryLimitBytes());
    }

    /**
     * The usage file stays 0666 because a container's processes may run as any uid: they reach it through its
     * own bind mount, not through the 0700 directory. Such a process is accounted and held to its quota.
     */
    @Test
    void aNonRootContainerProcessUsesItsUsageFileAndIsHeldToItsQuota() throws Exception {
        KubeletSimulator.Admission tenant = node.admit("team-c", "user-0", 250); // 4 GiB
        Container workload = node.start(
                tenant,
                List.of(
                        "setpriv",
                        "--reuid=65534",
                        "--regid=65534",
                        "--clear-groups",
                        "--",
                        node.workload(),
                        "alloc",
                        "alloc",
                        "3GiB",
                        "alloc",
                        "alloc",
                        "2GiB",
                        "sleep",
                        "120"));
        assertThat(workload.await("op=alloc", 1, PATIENCE).text()).contains("status=CUDA_SUCCESS");
        assertThat(workload.await("op=alloc", 2, PATIENCE).text())
                .as("3 + 2 GiB is past the 4 GiB quota")
                .contains("status=CUDA_ERROR_OUT_OF_MEMORY");
        try (AllocationFiles files = AllocationFiles.openReadOnly(node.allocationDir(tenant))) {
            UsageSnapshot usage = files.usage().read();
            assertThat(usage.slots())
                    .singleElement()
                    .satisfies(slot -> assertThat(slot.bytesInUse()).isEqualTo(3L << 30));
            assertThat(usage.devices().get(0).bytesReserved()).isEqualTo(3L << 30);
        }
        workload.close();
    }
}
