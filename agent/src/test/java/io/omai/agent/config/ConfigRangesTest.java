package io.omai.agent.config;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Values an operator can write but the agent cannot use: every duration and number has a range and is refused
 * naming its key (never an overflow deep inside the agent), and a key written twice is refused naming the key and
 * both lines (YAML would silently keep the last).
 */
class ConfigRangesTest {
    private static ConfigException refused(String yaml) {
        try {
            ConfigLoader.parse("agent.yaml", yaml);
        } catch (ConfigException e) {
            return e;
        }
        throw new AssertionError("accepted:\n" + yaml);
    }

    @Test
    void aDurationThatOverflowsALongNamesItsKey() {
        ConfigException e = refused("version: 1\nkubelet:\n  registrationBackoffMax: 9223372036854775807h\n");
        assertThat(e.key()).isEqualTo("kubelet.registrationBackoffMax");
        assertThat(e)
                .hasMessage("agent.yaml: kubelet.registrationBackoffMax: '9223372036854775807h' is too large; "
                        + "expected a whole number with ms, s, m or h, within 100ms..5m");
    }

    @Test
    void moreDigitsThanALongHoldsNamesTheKey() {
        ConfigException e = refused("version: 1\nnvml: {recoveryDebounce: 99999999999999999999999s}\n");
        assertThat(e.key()).isEqualTo("nvml.recoveryDebounce");
        assertThat(e).hasMessageContaining("is too large");
    }

    /** Every duration key, one value above its range each (the two that had no range failed later, with exit 3). */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', quoteCharacter = '"', textBlock = """
            sharing: {computePeriod: 11s}              | sharing.computePeriod        | '11s' is above 10s; expected 1ms..10s
            nvml: {recoveryDebounce: 2562047h}         | nvml.recoveryDebounce        | '2562047h' is above 1h; expected 0ms..1h
            kubelet: {registrationBackoffMax: 6m}      | kubelet.registrationBackoffMax | '6m' is above 5m; expected 100ms..5m
            kubelet: {reconcileInterval: 2h}           | kubelet.reconcileInterval    | '2h' is above 1h; expected 100ms..1h
            kubelet: {releaseGracePeriod: 2562047h}    | kubelet.releaseGracePeriod   | '2562047h' is above 24h; expected 0ms..24h
            tenancy: {identifyWait: 6s}                | tenancy.identifyWait         | '6s' is above 5s; expected 0ms..5s
            tenancy: {auditInterval: 61m}              | tenancy.auditInterval        | '61m' is above 1h; expected 100ms..1h
            ib: {pollInterval: 90m}                    | ib.pollInterval              | '90m' is above 1h; expected 100ms..1h
            kubelet: {registrationBackoffMax: 99ms}    | kubelet.registrationBackoffMax | '99ms' is below 100ms; expected 100ms..5m
            """)
    void everyDurationIsRangeChecked(String yaml, String key, String message) {
        ConfigException e = refused("version: 1\n" + yaml + "\n");
        assertThat(e.key()).isEqualTo(key);
        assertThat(e).hasMessage("agent.yaml: " + key + ": " + message);
    }

    @Test
    void theRangesEndsAreAccepted() throws ConfigException {
        AgentConfig config = ConfigLoader.parse("agent.yaml", """
                version: 1
                nvml: {recoveryDebounce: 0ms}
                kubelet: {registrationBackoffMax: 5m, reconcileInterval: 100ms, releaseGracePeriod: 24h}
                """);
        assertThat(config.kubelet().registrationBackoffMax()).isEqualTo(Duration.ofMinutes(5));
        assertThat(config.kubelet().releaseGracePeriod()).isEqualTo(Duration.ofDays(1));
        assertThat(config.nvml().recoveryDebounce()).isZero();
    }

    /** 2^64 + 5 must not wrap to 5: numbers too large for a long are out of range, not truncated. */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', quoteCharacter = '"', textBlock = """
            ib: {desiredVfs: 18446744073709551621}           | ib.desiredVfs
            ib: {desiredVfs: {'0000:3b:00.0': 65536}}         | ib.desiredVfs.0000:3b:00.0
            tenancy: {gpus: [18446744073709551616]}           | tenancy.gpus
            nvml: {ignoredXids: [18446744073709551629]}       | nvml.ignoredXids
            nvml: {ignoredXids: [4294967296]}                 | nvml.ignoredXids
            metrics: {port: 4294976696}                       | metrics.port
            schedulerApi: {port: 0}                           | schedulerApi.port
            schedulerApi: {deviceLabels: [{select: {index: 18446744073709551616}, tags: [a]}]} | schedulerApi.deviceLabels[0].select.index
            """)
    void numbersOutOfRangeAreRefusedNamingTheKey(String yaml, String key) {
        assertThat(refused("version: 1\n" + yaml + "\n").key()).isEqualTo(key);
    }

    @Test
    void aKeyWrittenTwiceIsRefusedNamingItAndBothLines() {
        ConfigException e = refused("""
                version: 1
                kubelet:
                  reconcileInterval: 5s
                  releaseGracePeriod: 60s
                  reconcileInterval: 30s
                """);
        assertThat(e.key()).isEqualTo("kubelet.reconcileInterval");
        assertThat(e)
                .hasMessage("agent.yaml: kubelet.reconcileInterval: appears twice, at lines 3 and 5; expected "
                        + "each key once (YAML would keep the second and silently drop the first)");
    }

    @Test
    void duplicatesAreFoundAtTheTopAndInsideLists() {
        assertThat(refused("version: 1\nnodeName: a\nnodeName: b\n"))
                .hasMessageContaining("nodeName: appears twice, at lines 2 and 3");
        assertThat(refused("""
                version: 1
                schedulerApi:
                  deviceLabels:
                    - select: all
                      tags: [a]
                    - select: all
                      tags: [b]
                      tags: [c]
                """).key()).isEqualTo("schedulerApi.deviceLabels[1].tags");
    }

    @Test
    void theSameKeyInDifferentMappingsIsNoDuplicate() throws ConfigException {
        AgentConfig config = ConfigLoader.parse("agent.yaml", """
                version: 1
                metrics: {address: 127.0.0.1, port: 9400}
                schedulerApi: {address: 127.0.0.1, port: 9401}
                """);
        assertThat(config.schedulerApi().port()).isEqualTo(9401);
    }
}
