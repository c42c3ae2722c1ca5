package io.omai.ibvf.kernel;

import io.omai.ibvf.error.Errno;
import io.omai.ibvf.error.KernelRejectedException;
import io.omai.ibvf.model.Guid;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** {@link IpLink} that runs the iproute2 {@code ip} binary; stderr is mapped to typed errors by {@link KernelErrors}. */
public final class ProcessIpLink implements IpLink {

    private final String ipBinary;
    private final Duration timeout;

    public ProcessIpLink(String ipBinary, Duration timeout) {
        this.ipBinary = ipBinary;
        this.timeout = timeout;
    }

    public static ProcessIpLink system() {
        return new ProcessIpLink("ip", Duration.ofSeconds(30));
    }

    @Override
    public void setVfGuids(String pfNetdev, int vfIndex, Guid nodeGuid, Guid portGuid) {
        run(
                pfNetdev,
                vfIndex,
                nodeGuid.toIpLinkFormat() + "/" + portGuid.toIpLinkFormat(),
                "node_guid",
                nodeGuid.toIpLinkFormat(),
                "port_guid",
                portGuid.toIpLinkFormat());
    }

    @Override
    public void setVfLinkState(String pfNetdev, int vfIndex, VfLinkState state) {
        run(pfNetdev, vfIndex, state.ipLinkWord(), "state", state.ipLinkWord());
    }

    @Override
    public void setVfTxRate(String pfNetdev, int vfIndex, TxRate rate) {
        run(
                pfNetdev,
                vfIndex,
                rate.maxMbps() + "/" + rate.minMbps(),
                "max_tx_rate",
                Integer.toString(rate.maxMbps()),
                "min_tx_rate",
                Integer.toString(rate.minMbps()));
    }

    private void run(String pfNetdev, int vfIndex, String value, String... settings) {
        List<String> command =
                new ArrayList<>(List.of(ipBinary, "link", "set", "dev", pfNetdev, "vf", Integer.toString(vfIndex)));
        command.addAll(List.of(settings));
        String commandLine = String.join(" ", command);
        try {
            Process process = new ProcessBuilder(command)
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                    .start();
            if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                process.destroyForcibly();
                throw KernelErrors.of(Errno.ETIMEDOUT, commandLine, value);
            }
            // ip prints a line or two on failure, far below the pipe buffer, so reading after exit cannot block
            String stderr = new String(process.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
            if (process.exitValue() != 0) {
                throw KernelErrors.commandFailed(commandLine, value, stderr);
            }
        } catch (IOException failure) {
            throw new KernelRejectedException(
                    Errno.ENOENT,
                    commandLine,
                    value,
                    "cannot run '" + ipBinary + "' (is iproute2 installed?): " + failure.getMessage(),
                    failure);
        } catch (InterruptedException interrupted) {
            Thread.currentThread().interrupt();
            throw KernelErrors.of(Errno.ETIMEDOUT, commandLine, value);
        }
    }
}
