/*
 * md_leader.h - who publishes in replicated mode (docs/replication.md, "One
 * publisher"): leadership comes from Kafka's group coordinator, not from code
 * of ours. Every replica joins one consumer group (replica.leader_group) on a
 * one-partition topic (replica.leader_topic) that nobody writes; the member
 * the coordinator assigns partition 0 leads (cooperative-sticky assignor: a
 * member that joins or leaves does not move the partition from its holder). A
 * member that stops
 * heartbeating (killed, partitioned from the broker) is removed after
 * replica.session_timeout_ms and the partition goes to another member: that
 * bounds the failover time. A member that cannot reach the coordinator for a
 * session timeout loses the partition on its side too (librdkafka revokes it
 * as lost), so two replicas do not both believe they lead for longer than the
 * broker's and the client's clocks disagree about one session timeout.
 *
 * Threads: md_leader_start/free on the main thread; the group runs on a
 * thread of its own, which calls on_change; md_leader_is from any thread.
 */
#ifndef MD_LEADER_H
#define MD_LEADER_H

#include <stdbool.h>

#include "md_config.h"
#include "md_error.h"

typedef struct md_leader md_leader_t;

/* Called on the leader thread when leadership is gained (true) or lost (false). */
typedef void (*md_leader_fn)(bool leads, void *ctx);

/**
 * @brief Joins the leader group and starts its thread. @p on_change may be NULL.
 * @returns MD_OK; MD_ECONFIG (a kafka.* property refused); MD_EKAFKA.
 */
MD_MUST_CHECK
md_err_t md_leader_start(const md_config_t *cfg, md_leader_fn on_change, void *ctx,
                         md_leader_t **out, md_error_t *err);

/** @brief true while this replica holds the leader partition. Any thread. */
bool md_leader_is(const md_leader_t *l);

/** @brief Leaves the group (another replica takes over at once), stops the
 *  thread and frees. NULL does nothing. */
void md_leader_free(md_leader_t *l);

#endif
