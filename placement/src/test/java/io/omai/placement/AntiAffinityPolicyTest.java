package io.omai.placement;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Set;
import org.junit.jupiter.api.Test;

class AntiAffinityPolicyTest {
    @Test
    void parse_acceptsConfigNamesAndRefusesOthersListingTheChoices() {
        assertThat(AntiAffinityPolicy.parse(" Node ")).isEqualTo(AntiAffinityPolicy.NODE);
        assertThat(AntiAffinityPolicy.DEFAULT).isEqualTo(AntiAffinityPolicy.GPU);
        assertThatThrownBy(() -> AntiAffinityPolicy.parse("rack"))
                .hasMessage("anti-affinity policy 'rack' is not one of gpu, node, none");
    }

    @Test
    void refusal_sameTenantIsAlwaysAdmitted() {
        for (AntiAffinityPolicy policy : AntiAffinityPolicy.values()) {
            assertThat(policy.refusal("a", "GPU-0", Set.of("a"), "n", Set.of("a")))
                    .isEmpty();
        }
    }

    @Test
    void refusal_gpuPolicyLooksAtTheGpuOnly() {
        assertThat(AntiAffinityPolicy.GPU.refusal("a", "GPU-0", Set.of(), "n", Set.of("b")))
                .isEmpty();
        assertThat(AntiAffinityPolicy.GPU.refusal("a", "GPU-0", Set.of("b"), "n", Set.of("b")))
                .contains("anti-affinity (policy gpu): tenant 'a' may not share GPU GPU-0 with tenant 'b'");
    }

    @Test
    void refusal_nodePolicyLooksAtTheWholeNode() {
        assertThat(AntiAffinityPolicy.NODE.refusal("a", "GPU-0", Set.of(), "n", Set.of("b")))
                .contains("anti-affinity (policy node): tenant 'a' may not use node n while tenant 'b' runs GPU "
                        + "workloads there");
    }
}
