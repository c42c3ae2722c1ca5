package io.omai.agent.schedapi;

import java.security.cert.CertificateParsingException;
import java.security.cert.X509Certificate;
import java.util.Collection;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import javax.naming.InvalidNameException;
import javax.naming.ldap.LdapName;
import javax.naming.ldap.Rdn;

/** The names a client certificate proves: its subject CN and its DNS and URI subject alternative names. */
record ClientIdentity(Set<String> names) {
    private static final int SAN_DNS = 2;
    private static final int SAN_URI = 6;

    ClientIdentity {
        names = Set.copyOf(names);
    }

    static ClientIdentity of(X509Certificate certificate) {
        var names = new LinkedHashSet<String>();
        try {
            for (Rdn rdn : new LdapName(certificate.getSubjectX500Principal().getName()).getRdns()) {
                if (rdn.getType().equalsIgnoreCase("CN")) {
                    names.add(rdn.getValue().toString());
                }
            }
        } catch (InvalidNameException e) {
            // the TLS stack accepted the certificate, so its subject parses; an odd one just proves no CN
        }
        try {
            Collection<List<?>> sans = certificate.getSubjectAlternativeNames();
            if (sans != null) {
                for (List<?> san : sans) {
                    int type = (Integer) san.get(0);
                    if (type == SAN_DNS || type == SAN_URI) {
                        names.add(san.get(1).toString());
                    }
                }
            }
        } catch (CertificateParsingException e) {
            // an unparsable SAN extension proves nothing; the CN (if any) still counts
        }
        return new ClientIdentity(names);
    }

    boolean isAnyOf(Set<String> allowed) {
        return names.stream().anyMatch(allowed::contains);
    }
}
