package io.omai.agent.dra;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The DRA service behind both API versions: each claim of a request is prepared (or unprepared) on its own, its
 * failure answered in its own entry, so one bad claim never fails the others. Claims are handled one at a time,
 * in order: a pod's claims arrive in one call and share the node's GPUs.
 */
final class DraService {
    private static final Logger log = LoggerFactory.getLogger(DraService.class);

    /** Most claims one call may carry (kubelet sends a pod's claims). */
    static final int MAX_CLAIMS_PER_CALL = 128;

    /** One claim's answer: its devices, or an error. */
    record Outcome(List<ClaimPreparer.PreparedDevice> devices, String error) {}

    private final ClaimPreparer preparer;

    DraService(ClaimPreparer preparer) {
        this.preparer = preparer;
    }

    /** Keyed by claim UID, in request order; a UID twice in one request is answered once. */
    Map<String, Outcome> prepare(List<ClaimRef> claims) {
        Map<String, Outcome> answers = new LinkedHashMap<>();
        for (ClaimRef claim : claims) {
            if (answers.containsKey(claim.uid())) {
                continue;
            }
            try {
                answers.put(
                        claim.uid(), new Outcome(preparer.prepare(claim.namespace(), claim.uid(), claim.name()), ""));
            } catch (ClaimPreparer.ClaimException e) {
                log.warn(
                        "event=claim_prepare_failed claim={}/{} uid={} reason=\"{}\"",
                        claim.namespace(),
                        claim.name(),
                        claim.uid(),
                        e.getMessage());
                answers.put(claim.uid(), new Outcome(List.of(), e.getMessage()));
            } catch (RuntimeException e) {
                log.error(
                        "event=claim_prepare_failed claim={}/{} uid={}",
                        claim.namespace(),
                        claim.name(),
                        claim.uid(),
                        e);
                answers.put(claim.uid(), new Outcome(List.of(), "internal error preparing the claim: " + e));
            }
        }
        return answers;
    }

    /** Keyed by claim UID; the value is the error, "" when unprepared. */
    Map<String, String> unprepare(List<ClaimRef> claims) {
        Map<String, String> answers = new LinkedHashMap<>();
        for (ClaimRef claim : claims) {
            try {
                preparer.unprepare(claim.namespace(), claim.uid(), claim.name());
                answers.put(claim.uid(), "");
            } catch (ClaimPreparer.ClaimException e) {
                log.warn(
                        "event=claim_unprepare_failed claim={}/{} uid={} reason=\"{}\"",
                        claim.namespace(),
                        claim.name(),
                        claim.uid(),
                        e.getMessage());
                answers.put(claim.uid(), e.getMessage());
            } catch (RuntimeException e) {
                log.error(
                        "event=claim_unprepare_failed claim={}/{} uid={}",
                        claim.namespace(),
                        claim.name(),
                        claim.uid(),
                        e);
                answers.put(claim.uid(), "internal error unpreparing the claim: " + e);
            }
        }
        return answers;
    }

    static String tooMany(int count) {
        return "claims has " + count + " entries; at most " + MAX_CLAIMS_PER_CALL + " are accepted in one call";
    }
}
