package io.omai.agent.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

class CliTest {
    @TempDir
    Path dir;

    record Run(int exit, String out, String err) {}

    private static Run run(String... args) {
        CommandLine cli = OmaiCommand.commandLine();
        StringWriter err = new StringWriter();
        cli.setErr(new PrintWriter(err));
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        java.io.PrintStream saved = System.out;
        System.setOut(new java.io.PrintStream(out, true, java.nio.charset.StandardCharsets.UTF_8));
        try {
            int exit = cli.execute(args);
            return new Run(exit, out.toString(java.nio.charset.StandardCharsets.UTF_8), err.toString());
        } finally {
            System.setOut(saved);
        }
    }

    @Test
    void createSetAndInspectAnAllocationByHand() {
        Path alloc = dir.resolve("alloc-1");
        Run created = run(
                "create",
                alloc.toString(),
                "--label",
                "team-a/p/c",
                "--device",
                "uuid=GPU-aaaa,memory=4GiB,quota=300,mode=hard-cap,index=2");
        assertThat(created.exit()).as(created.err()).isZero();
        assertThat(created.out()).contains("team-a/p/c", "GPU-aaaa", "4.00 GiB", "300", "hard-cap");

        Run set = run("set", alloc.toString(), "--device", "uuid=GPU-aaaa,memory=6GiB,quota=500,mode=work-conserving");
        assertThat(set.exit()).as(set.err()).isZero();
        assertThat(set.out()).contains("epoch 2", "6.00 GiB", "work-conserving");

        Run inspect = run("inspect", dir.toString());
        assertThat(inspect.exit()).isZero();
        assertThat(inspect.out()).contains("allocation " + alloc, "6.00 GiB", "processes  0 live");

        Run json = run("inspect", "--json", alloc.toString());
        assertThat(json.exit()).isZero();
        assertThat(json.out()).contains("\"memoryLimitBytes\" : 6442450944", "\"computeQuotaMilli\" : 500");
    }

    /** Issue #13: omai set wrote a live control file beside the agent; the seqlock has room for one writer. */
    @Test
    void setIsRefusedWhileAnotherWriterOwnsTheAllocation() throws Exception {
        Path alloc = dir.resolve("alloc-2");
        assertThat(run("create", alloc.toString(), "--device", "uuid=GPU-aaaa,memory=4GiB")
                        .exit())
                .isZero();
        try (var _ = io.omai.agent.quota.shm.ControlWriterLock.acquire(alloc)) {
            Run set = run("set", alloc.toString(), "--device", "uuid=GPU-aaaa,memory=60GiB");
            assertThat(set.exit()).isEqualTo(2);
            assertThat(set.err())
                    .contains(
                            "has a writer already",
                            "pid " + ProcessHandle.current().pid(),
                            "change limits through the agent or stop it first");
        }
        assertThat(run("inspect", alloc.toString()).out())
                .as("nothing written")
                .contains("4.00 GiB")
                .doesNotContain("60.00 GiB");
        Run after = run("set", alloc.toString(), "--device", "uuid=GPU-aaaa,memory=6GiB");
        assertThat(after.exit()).as("no writer left: " + after.err()).isZero();
        assertThat(after.out()).contains("6.00 GiB");
    }

    @Test
    void ibShowsPfsVfsAndQosFromASysfsTree() {
        io.omai.ibvf.testing.FakeSysfs tree = io.omai.ibvf.testing.FakeSysfs.create(dir.resolve("sys"));
        io.omai.ibvf.testing.FakePf ib = tree.connectX6Ib(0, 8);
        tree.connectX6Eth(1, 4);
        new io.omai.ibvf.testing.FakeKernel(tree).write("bus/pci/devices/" + ib.address() + "/sriov_numvfs", "2");

        Run text = run("ib", "--sysfs-root", tree.root().toString());
        assertThat(text.exit()).as(text.err()).isZero();
        assertThat(text.out()).contains("0000:3b:00.0", "InfiniBand", "Ethernet");

        Run json = run("ib", "--sysfs-root", tree.root().toString(), "--format", "json");
        assertThat(json.exit()).as(json.err()).isZero();
        assertThat(json.out()).startsWith("{").contains("0000:3b:00.0");

        Run bad = run("ib", "--sysfs-root", tree.root().toString(), "--format", "yaml");
        assertThat(bad.exit()).isNotZero();
        assertThat(bad.err()).contains("yaml");
    }

    @Test
    void badInputIsRefusedWithWhatWasExpected() {
        Run badSize = run("create", dir.resolve("x").toString(), "--device", "uuid=GPU-a,memory=lots");
        assertThat(badSize.exit()).isEqualTo(2);
        assertThat(badSize.err()).contains("'lots' is not a byte size");

        Run badKey = run("create", dir.resolve("x").toString(), "--device", "uuid=GPU-a,colour=red");
        assertThat(badKey.err()).contains("unknown key 'colour'");

        Run badQuota = run("create", dir.resolve("x").toString(), "--device", "uuid=GPU-a,quota=1200");
        assertThat(badQuota.err()).contains("compute quota 1200 of GPU-a is outside 1..1000");

        Run missing = run("inspect", dir.resolve("nothing-here").toString());
        assertThat(missing.exit()).isEqualTo(2);
        assertThat(missing.err()).contains("nothing-here").contains("expected an allocation directory");

        Run wrongCount = run("create", dir.resolve("y").toString(), "--device", "uuid=GPU-a");
        assertThat(wrongCount.exit()).isZero();
        Run set = run("set", dir.resolve("y").toString(), "--device", "uuid=GPU-a", "--device", "uuid=GPU-b");
        assertThat(set.err()).contains("has 1 device(s); --device was given 2 time(s)");
    }
}
