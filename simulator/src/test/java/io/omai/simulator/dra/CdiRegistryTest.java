package io.omai.simulator.dra;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.simulator.launcher.ContainerEdits;
import io.omai.simulator.launcher.ContainerEdits.BindMount;
import io.omai.simulator.launcher.ContainerEdits.DeviceNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CdiRegistryTest {
    @TempDir
    Path cdi;

    private static final String JSON_SPEC = """
            {"cdiVersion": "0.6.0", "kind": "gpu.omai.io/gpu",
             "containerEdits": {"env": ["SPEC_LEVEL=1"]},
             "devices": [
               {"name": "claim-a", "containerEdits": {
                  "env": ["OMAI_CONTROL_FILE=/run/omai/control", "NVIDIA_VISIBLE_DEVICES=GPU-0"],
                  "mounts": [
                    {"hostPath": "/state/a/control", "containerPath": "/run/omai/control", "options": ["ro", "nosuid", "bind"]},
                    {"hostPath": "/state/a/usage", "containerPath": "/run/omai/usage", "options": ["rw", "bind"]}],
                  "deviceNodes": [{"path": "/dev/nvidia0"}, {"path": "/dev/nvidiactl", "hostPath": "/dev/nvidiactl"}]}},
               {"name": "claim-b", "containerEdits": {"env": ["B=2"]}}]}
            """;

    @Test
    void resolvesDevicesIntoTheSpecLevelEditsOnceAndEachDevicesOwn() throws Exception {
        Files.writeString(cdi.resolve("omai-claim-a.json"), JSON_SPEC);
        Files.writeString(cdi.resolve("other.yaml"), """
                cdiVersion: 0.5.0
                kind: vendor.example/nic
                devices:
                  - name: vf0
                    containerEdits:
                      deviceNodes:
                        - path: /dev/infiniband/uverbs3
                """);
        CdiRegistry registry = CdiRegistry.scan(cdi);
        assertThat(registry.specErrors()).isEmpty();
        assertThat(registry.deviceNames())
                .containsExactlyInAnyOrder(
                        "gpu.omai.io/gpu=claim-a", "gpu.omai.io/gpu=claim-b", "vendor.example/nic=vf0");

        ContainerEdits edits = registry.resolve(
                List.of("gpu.omai.io/gpu=claim-a", "gpu.omai.io/gpu=claim-b", "vendor.example/nic=vf0"));
        assertThat(edits.env())
                .containsEntry("SPEC_LEVEL", "1")
                .containsEntry("OMAI_CONTROL_FILE", "/run/omai/control")
                .containsEntry("NVIDIA_VISIBLE_DEVICES", "GPU-0")
                .containsEntry("B", "2");
        assertThat(edits.mounts())
                .containsExactly(
                        new BindMount("/state/a/control", "/run/omai/control", true),
                        new BindMount("/state/a/usage", "/run/omai/usage", false));
        assertThat(edits.deviceNodes())
                .containsExactly(
                        new DeviceNode("/dev/nvidia0", "/dev/nvidia0"),
                        new DeviceNode("/dev/nvidiactl", "/dev/nvidiactl"),
                        new DeviceNode("/dev/infiniband/uverbs3", "/dev/infiniband/uverbs3"));
    }

    @Test
    void anUnknownDeviceFailsTheWholeResolutionNamingItAndTheBrokenSpecs() throws Exception {
        Files.writeString(cdi.resolve("good.json"), JSON_SPEC);
        Files.writeString(cdi.resolve("broken.json"), "{\"cdiVersion\": \"0.6.0\", \"kind\": \"nokind\"}");
        Files.writeString(cdi.resolve("notes.txt"), "not a spec: ignored by name");
        CdiRegistry registry = CdiRegistry.scan(cdi);
        assertThat(registry.specErrors()).singleElement().asString().contains("broken.json", "kind 'nokind'");
        assertThatThrownBy(() -> registry.resolve(List.of("gpu.omai.io/gpu=claim-a", "gpu.omai.io/gpu=gone")))
                .isInstanceOf(CdiRegistry.CdiResolutionException.class)
                .hasMessageContaining("unresolvable CDI devices gpu.omai.io/gpu=gone")
                .hasMessageContaining("broken.json");
    }

    @Test
    void aSpecWithHooksOrBadEnvIsLeftOutAndADeviceDefinedTwiceIsReported() throws Exception {
        Files.writeString(
                cdi.resolve("hooks.json"),
                "{\"cdiVersion\": \"0.6.0\", \"kind\": \"a.example/x\", \"devices\": [{\"name\": \"d\","
                        + " \"containerEdits\": {\"hooks\": [{\"hookName\": \"createContainer\", \"path\": \"/bin/true\"}]}}]}");
        Files.writeString(
                cdi.resolve("env.json"),
                "{\"cdiVersion\": \"0.6.0\", \"kind\": \"b.example/x\", \"devices\": [{\"name\": \"d\","
                        + " \"containerEdits\": {\"env\": [\"NOEQUALS\"]}}]}");
        Files.writeString(cdi.resolve("a.json"), JSON_SPEC);
        Files.writeString(cdi.resolve("b.json"), JSON_SPEC);
        CdiRegistry registry = CdiRegistry.scan(cdi);
        assertThat(String.join("\n", registry.specErrors()))
                .contains("hooks.json: device d has hooks")
                .contains("env.json: device d: env entry 'NOEQUALS' is not KEY=VALUE")
                .contains("b.json: device gpu.omai.io/gpu=claim-a is also defined in");
        assertThat(registry.deviceNames()).doesNotContain("a.example/x=d", "b.example/x=d");
    }

    @Test
    void aMissingDirectoryHoldsNoDevices() {
        CdiRegistry registry = CdiRegistry.scan(cdi.resolve("absent"));
        assertThat(registry.deviceNames()).isEmpty();
        assertThatThrownBy(() -> registry.resolve(List.of("gpu.omai.io/gpu=x")))
                .hasMessageContaining("unresolvable CDI devices gpu.omai.io/gpu=x");
    }
}
