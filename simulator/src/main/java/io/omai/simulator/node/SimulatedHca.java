package io.omai.simulator.node;

import io.omai.ibvf.IbVfManager;
import io.omai.ibvf.IbVfManagerConfig;
import io.omai.ibvf.config.NodeRebindLock;
import io.omai.ibvf.config.ReadinessPolicy;
import io.omai.ibvf.guid.FileGuidStore;
import io.omai.ibvf.guid.GuidRange;
import io.omai.ibvf.kernel.VfLinkState;
import io.omai.ibvf.testing.FakeKernel;
import io.omai.ibvf.testing.FakePf;
import io.omai.ibvf.testing.FakeSysfs;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * One ConnectX-6 InfiniBand HCA of a simulated node in a fake sysfs, its VFs already created with GUIDs from the
 * node's range (the fake kernel plays provisioning, as on a node where the agent restarts): the agent's own
 * reconcile then finds them as desired and advertises them as {@code omai.io/ib-vf}.
 */
public record SimulatedHca(Path sysfsRoot, FakePf pf, String guidRange, int vfs, Path rebindLock) {

    /** Creates the HCA (NUMA node 0) with {@code vfs} VFs under {@code paths}' root for node {@code nodeName}. */
    public static SimulatedHca provision(SimulatedNodePaths paths, String nodeName, String guidRange, int vfs) {
        Path sysfsRoot = paths.root().resolve("sys");
        Path lock = paths.root().resolve("ib/lock");
        FakeSysfs sysfs = FakeSysfs.create(sysfsRoot);
        FakePf pf = sysfs.connectX6Ib(0, Math.max(8, vfs));
        FakeKernel kernel = new FakeKernel(sysfs);
        try {
            Files.createDirectories(paths.state());
            Files.createDirectories(lock.getParent());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create the state directories under " + paths.root(), e);
        }
        new IbVfManager(
                        new IbVfManagerConfig(
                                nodeName,
                                GuidRange.parse(guidRange),
                                VfLinkState.AUTO,
                                new ReadinessPolicy(3, Duration.ZERO)),
                        kernel,
                        kernel,
                        new FileGuidStore(paths.state().resolve("ib-vf-guids")),
                        new NodeRebindLock(lock),
                        duration -> {})
                .reconcile(pf.address(), vfs);
        return new SimulatedHca(sysfsRoot, pf, guidRange, vfs, lock);
    }

    /** The agent's {@code ib} settings for this HCA. */
    public AgentYaml configure(AgentYaml yaml) {
        return yaml.set("ib.enabled", "true")
                .set("ib.sysfsRoot", sysfsRoot)
                .set("ib.guidRange", guidRange)
                .set("ib.desiredVfs", vfs)
                .set("ib.pollInterval", "1s")
                .set("ib.rebindLock", rebindLock);
    }
}
