<?php

declare(strict_types=1);

namespace Cometbox\Exception;

/**
 * Implemented by everything this library throws, so that one
 *
 *     catch (CometboxException $e)
 *
 * catches it all. The concrete exceptions extend the matching SPL
 * exception as well (\InvalidArgumentException, \RuntimeException,
 * \LogicException), so code that catches those keeps working.
 */
interface CometboxException extends \Throwable
{
}
