package io.omai.agent.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.omai.ibvf.model.LinkLayer;
import java.time.Duration;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** {@code schedulerApi.reserveAuth} and friends, and {@code ib.resources}: defaults and every refusal. */
class ReserveAuthAndVfResourcesConfigTest {
    private static AgentConfig parse(String yaml) throws ConfigException {
        return ConfigLoader.parse("test", "version: 1\n" + yaml);
    }

    private static void refused(String yaml, String key, String... phrases) {
        var thrown = assertThatThrownBy(() -> parse(yaml))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining(key);
        for (String phrase : phrases) {
            thrown.hasMessageContaining(phrase);
        }
    }

    @Test
    void reserveNeedsTheExtendersTokenByDefault() throws ConfigException {
        AgentConfig.SchedulerApi api = parse("").schedulerApi();

        assertThat(api.reserveAuth()).isEqualTo(AgentConfig.ReserveAuth.TOKEN_REVIEW);
        assertThat(api.reserveCallers()).containsExactly("system:serviceaccount:omai-system:omai-scheduler-extender");
        assertThat(api.tokenAudience()).isEqualTo("omai-node-agent");
        assertThat(api.tokenCacheTtl()).isEqualTo(Duration.ofSeconds(30));
    }

    @Test
    void reserveAuthSettingsAreRead() throws ConfigException {
        AgentConfig.SchedulerApi api = parse("""
                schedulerApi:
                  reserveAuth: none
                  reserveCallers: [system:serviceaccount:kube-system:my-scheduler, "omai:schedulers"]
                  tokenAudience: my-agents
                  tokenCacheTtl: 5s
                """).schedulerApi();

        assertThat(api.reserveAuth()).isEqualTo(AgentConfig.ReserveAuth.NONE);
        assertThat(api.reserveCallers())
                .containsExactlyInAnyOrder("system:serviceaccount:kube-system:my-scheduler", "omai:schedulers");
        assertThat(api.tokenAudience()).isEqualTo("my-agents");
        assertThat(api.tokenCacheTtl()).isEqualTo(Duration.ofSeconds(5));
    }

    @Test
    void badReserveAuthSettingsAreRefusedNamingTheKey() {
        refused("schedulerApi: {reserveAuth: password}\n", "schedulerApi.reserveAuth", "'password'", "tokenReview");
        refused("schedulerApi: {reserveAuth: mtls}\n", "schedulerApi.reserveAuth", "tls is not set");
        refused("schedulerApi: {reserveCallers: someone}\n", "schedulerApi.reserveCallers", "expected a list");
        refused("schedulerApi: {reserveCallers: []}\n", "schedulerApi.reserveCallers", "is empty");
        refused("schedulerApi: {reserveCallers: [\"\"]}\n", "schedulerApi.reserveCallers", "non-empty");
        refused("schedulerApi: {tokenAudience: \" \"}\n", "schedulerApi.tokenAudience", "audience");
        refused("schedulerApi: {tokenCacheTtl: 1h}\n", "schedulerApi.tokenCacheTtl");
        refused("schedulerApi: {reserveAuth: tokenReview, tokenAudiences: x}\n", "tokenAudiences");
    }

    @Test
    void theIbVfResourceOffersInfiniBandPfsOnlyByDefault() throws ConfigException {
        AgentConfig.Ib ib = parse("").ib();

        assertThat(ib.resources()).containsExactly(AgentConfig.VfResource.infiniband("omai.io/ib-vf"));
        assertThat(ib.resources().getFirst().selects(LinkLayer.INFINIBAND, "15b3", "101b", Set.of("ib0")))
                .isTrue();
        assertThat(ib.resources().getFirst().selects(LinkLayer.ETHERNET, "15b3", "101b", Set.of("ens1f0")))
                .isFalse();
    }

    @Test
    void resourcesWithSelectorsAreRead() throws ConfigException {
        AgentConfig.Ib ib = parse("""
                ib:
                  resources:
                    - {name: omai.io/ib-vf, linkTypes: [infiniband]}
                    - name: omai.io/roce-vf
                      linkTypes: [ethernet]
                      vendors: ["0x15B3"]
                      devices: ["101b", "101d"]
                      pfNames: [ens1f0np0, mlx5_2]
                """).ib();

        assertThat(ib.resources())
                .containsExactly(
                        AgentConfig.VfResource.infiniband("omai.io/ib-vf"),
                        new AgentConfig.VfResource(
                                "omai.io/roce-vf",
                                Set.of(LinkLayer.ETHERNET),
                                Set.of("15b3"),
                                Set.of("101b", "101d"),
                                Set.of("ens1f0np0", "mlx5_2")));
        AgentConfig.VfResource roce = ib.resources().get(1);
        assertThat(roce.selects(LinkLayer.ETHERNET, "15b3", "101d", Set.of("ens9", "mlx5_2")))
                .isTrue();
        assertThat(roce.selects(LinkLayer.ETHERNET, "15b3", "1017", Set.of("mlx5_2")))
                .isFalse();
        assertThat(roce.socketName()).isEqualTo("omai-io-roce-vf.sock");
    }

    @Test
    void badResourcesAreRefusedNamingTheEntry() {
        refused(
                "ib:\n  resources: [{name: omai.io/x, linkTypes: [omnipath]}]\n",
                "ib.resources[0].linkTypes",
                "'omnipath'",
                "infiniband or ethernet");
        refused("""
                ib:
                  resources:
                    - {name: omai.io/a, linkTypes: [infiniband]}
                    - {name: omai.io/b, vendors: [15b3]}
                """, "ib.resources[1]", "'omai.io/b' and 'omai.io/a' could select the same PF");
        refused("""
                ib:
                  resources:
                    - {name: omai.io/a, linkTypes: [infiniband]}
                    - {name: omai.io/a, linkTypes: [ethernet]}
                """, "ib.resources[1].name", "named twice");
        refused(
                "ib:\n  resourceName: omai.io/ib\n  resources: [{name: omai.io/a, linkTypes: [infiniband]}]\n",
                "ib.resourceName",
                "together with ib.resources");
        refused("ib:\n  resources: [{name: omai.io/a, vendors: [mellanox]}]\n", "ib.resources[0].vendors", "4-digit");
        refused("ib:\n  resources: [{name: omai.io/a}]\n", "ib.resources[0]", "selects every RDMA PF");
        refused("ib:\n  resources: [{name: kubernetes.io/a, linkTypes: [ethernet]}]\n", "ib.resources[0].name");
        refused("ib:\n  resources: [{name: omai.io/a, linkTypes: [ethernet], pfname: [x]}]\n", "pfname");
        refused("ib:\n  resources: []\n", "ib.resources", "non-empty list");
    }

    @Test
    void resourcesThatDifferInOneSetDimensionMayCoexist() throws ConfigException {
        AgentConfig.Ib ib = parse("""
                ib:
                  resources:
                    - {name: omai.io/rail-0, pfNames: [ibp59s0]}
                    - {name: omai.io/rail-1, pfNames: [ibp216s0]}
                """).ib();

        assertThat(ib.resources()).hasSize(2);
    }
}
