package io.omai.agent.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.ibvf.guid.GuidRange;
import io.omai.ibvf.kernel.VfLinkState;
import io.omai.ibvf.model.PciAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The {@code ib:} section: the VF device plugin's keys, defaults and refusals. */
class IbConfigTest {
    private static final String RANGE = "02:00:00:07:00:00:00:00-02:00:00:07:00:00:ff:ff";

    @Test
    void defaultsLeaveThePluginOffAndEveryVfCountAsItIs() {
        AgentConfig.Ib ib = ConfigLoader.defaults().ib();

        assertThat(ib)
                .isEqualTo(new AgentConfig.Ib(
                        false,
                        "omai.io/ib-vf",
                        Path.of("/sys"),
                        Optional.empty(),
                        Map.of(),
                        OptionalInt.empty(),
                        VfLinkState.AUTO,
                        Duration.ofSeconds(5),
                        Path.of("/run/omai/ib-vf-rebind.lock")));
        assertThat(ib.socketName()).isEqualTo("omai-io-ib-vf.sock");
    }

    @Test
    void everyKeyIsRead() throws ConfigException {
        AgentConfig.Ib ib =
                ConfigLoader.parse("agent.yaml", """
                version: 1
                ib:
                  enabled: true
                  resourceName: example.com/rdma-vf
                  sysfsRoot: /host/sys
                  guidRange: %s
                  desiredVfs: {"0000:3b:00.0": 8, "0000:86:00.0": 0}
                  vfLinkState: enable
                  pollInterval: 250ms
                  rebindLock: /var/run/omai/rebind.lock
                """.formatted(RANGE)).ib();

        assertThat(ib)
                .isEqualTo(new AgentConfig.Ib(
                        true,
                        "example.com/rdma-vf",
                        Path.of("/host/sys"),
                        Optional.of(GuidRange.parse(RANGE)),
                        Map.of(PciAddress.of("0000:3b:00.0"), 8, PciAddress.of("0000:86:00.0"), 0),
                        OptionalInt.empty(),
                        VfLinkState.ENABLE,
                        Duration.ofMillis(250),
                        Path.of("/var/run/omai/rebind.lock")));
    }

    @Test
    void oneCountAppliesToEveryPf() throws ConfigException {
        AgentConfig.Ib ib = ConfigLoader.parse("agent.yaml", "version: 1\nib: {desiredVfs: 4}")
                .ib();

        assertThat(ib.desiredVfsEveryPf()).hasValue(4);
        assertThat(ib.desiredVfs()).isEmpty();
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
            ib: {enabled: true}                          | ib.guidRange: is empty but ib.enabled is true; expected this node's own block
            ib: {guidRange: 02:00-03:00}                 | ib.guidRange: GUID range '02:00-03:00': '02:00' is not a GUID
            ib: {guidRange: '02:00:00:00:00:00:00:09-02:00:00:00:00:00:00:01'} | ib.guidRange: GUID range start 02:00:00:00:00:00:00:09 is above its end
            ib: {resourceName: vf}                       | ib.resourceName: 'vf' is not an extended resource name of your own
            ib: {resourceName: nvidia.com/vf}            | ib.resourceName: 'nvidia.com/vf' is not an extended resource name of your own
            ib: {resourceName: omai.io/milli-gpu}        | ib.resourceName: 'omai.io/milli-gpu' is also resources.milliGpu
            ib: {sysfsRoot: sys}                         | ib.sysfsRoot: 'sys' is not an absolute path
            ib: {desiredVfs: -1}                         | ib.desiredVfs: is '-1' (number); expected a VF count, a whole number 0..65535
            ib: {desiredVfs: 70000}                      | ib.desiredVfs: is '70000' (number); expected a VF count
            ib: {desiredVfs: many}                       | ib.desiredVfs: is 'many' (a string); expected a VF count for every PF (e.g. 8) or a mapping
            ib: {desiredVfs: {"3b:00.0": 8}}             | ib.desiredVfs.3b:00.0: '3b:00.0' is not a PF PCI address; expected the form 0000:3b:00.0
            ib: {desiredVfs: {"0000:3b:00.0": x}}        | ib.desiredVfs.0000:3b:00.0: is 'x' (a string); expected a VF count
            ib: {vfLinkState: disable}                   | ib.vfLinkState: 'disable' is unknown; expected auto (the VF port follows the PF port) or enable
            ib: {pollInterval: 10ms}                     | ib.pollInterval: '10ms' is below 100ms
            ib: {pollInterval: often}                    | ib.pollInterval: 'often' is not a duration
            ib: {enable: true}                           | ib.enable: is not a known key; expected one of enabled, resourceName
            ib: [true]                                   | ib: is a list; expected a mapping
            """)
    void badValuesAreRefusedNamingKeyValueAndExpectation(String yaml, String message) {
        assertThatThrownBy(() -> ConfigLoader.parse("agent.yaml", "version: 1\n" + yaml))
                .isInstanceOf(ConfigException.class)
                .hasMessageStartingWith("agent.yaml: ")
                .hasMessageContaining(message);
    }
}
