"""The room, resume, multi-node, timer, flash-sale and per-user notice behaviours, unchanged,
against the real cluster (fixtures from this directory's conftest)."""

from tests.notify.test_notifications import (
    test_paid_and_shipped_reach_socket_and_subscribe_message_once,
    test_points_balance_change_reaches_the_users_socket,
)
from tests.realtime.test_multinode import test_two_nodes_exactly_once_in_order_and_failover
from tests.realtime.test_socket import (
    test_dropped_viewer_resumes_with_nothing_missed,
    test_ending_the_room_closes_sockets_with_4410,
    test_epoch_change_forces_resync,
    test_publish_many_survives_a_script_flush,
    test_resume_beyond_history_gets_resync,
    test_viewer_count_is_published,
    test_welcome_carries_current_bubble,
    test_welcome_then_pushes_in_order_to_every_viewer,
)
from tests.social.test_flashsale import (
    test_cancel_timeout_and_refund_return_stock,
    test_concurrent_buyers_get_exactly_min_n_s_orders,
    test_push_into_live_room_shows_stock_left,
    test_reconcile_after_redis_loses_the_sale,
)
from tests.timer.test_timer import (
    test_redis_flushed_mid_schedule_rebuilds_without_loss_or_double,
    test_scheduled_push_reaches_viewer_and_is_recorded,
    test_three_racing_dispatchers_fire_each_push_exactly_once,
)

__all__ = [
    "test_cancel_timeout_and_refund_return_stock",
    "test_concurrent_buyers_get_exactly_min_n_s_orders",
    "test_dropped_viewer_resumes_with_nothing_missed",
    "test_ending_the_room_closes_sockets_with_4410",
    "test_epoch_change_forces_resync",
    "test_paid_and_shipped_reach_socket_and_subscribe_message_once",
    "test_points_balance_change_reaches_the_users_socket",
    "test_publish_many_survives_a_script_flush",
    "test_push_into_live_room_shows_stock_left",
    "test_reconcile_after_redis_loses_the_sale",
    "test_redis_flushed_mid_schedule_rebuilds_without_loss_or_double",
    "test_resume_beyond_history_gets_resync",
    "test_scheduled_push_reaches_viewer_and_is_recorded",
    "test_three_racing_dispatchers_fire_each_push_exactly_once",
    "test_two_nodes_exactly_once_in_order_and_failover",
    "test_viewer_count_is_published",
    "test_welcome_carries_current_bubble",
    "test_welcome_then_pushes_in_order_to_every_viewer",
]
