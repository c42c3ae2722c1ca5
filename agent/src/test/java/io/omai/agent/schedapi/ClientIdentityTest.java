package io.omai.agent.schedapi;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ClientIdentityTest {
    @Test
    void of_provesTheCommonNameAndDnsAndUriSans(@TempDir Path directory) throws Exception {
        var pki = new ThrowawayPki(directory);
        ThrowawayPki.Party party = pki.issue(
                "scheduler",
                "omai-scheduler",
                "dns:scheduler.kube-system.svc,uri:spiffe://cluster/ns/kube-system/sa/omai-scheduler,ip:10.0.0.7");
        X509Certificate certificate;
        try (InputStream in = Files.newInputStream(party.certificateChain())) {
            certificate =
                    (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }

        ClientIdentity identity = ClientIdentity.of(certificate);

        assertThat(identity.names())
                .containsExactlyInAnyOrder(
                        "omai-scheduler",
                        "scheduler.kube-system.svc",
                        "spiffe://cluster/ns/kube-system/sa/omai-scheduler");
        assertThat(identity.isAnyOf(Set.of("spiffe://cluster/ns/kube-system/sa/omai-scheduler")))
                .isTrue();
        assertThat(identity.isAnyOf(Set.of("10.0.0.7", "other"))).isFalse();
    }
}
