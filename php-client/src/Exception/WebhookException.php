<?php

declare(strict_types=1);

namespace Cometbox\Exception;

/**
 * Webhook::verify() refused a request: its Cometbox-Signature is missing,
 * malformed or wrong (not signed with the secret, or the body changed),
 * it was signed too long ago (a replay), or the body is not a cometbox
 * webhook. Answer such a request with 400 and ignore it.
 */
final class WebhookException extends \RuntimeException implements CometboxException
{
}
