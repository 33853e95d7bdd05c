<?php

declare(strict_types=1);

namespace Cometbox\Exception;

/**
 * The client was asked for something its configuration cannot do: a
 * token without a token secret, a transport whose PHP extension is
 * missing.
 */
final class LogicException extends \LogicException implements CometboxException
{
}
