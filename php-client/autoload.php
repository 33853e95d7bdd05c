<?php

/*
 * The autoloader for those who do not use Composer:
 *
 *     require __DIR__ . '/php-client/autoload.php';
 *
 * It maps the Cometbox\ namespace onto src/ (PSR-4), exactly as
 * composer.json does, and loads nothing until a class is used.
 */

declare(strict_types=1);

spl_autoload_register(static function (string $class): void {
    $prefix = 'Cometbox\\';
    if (strncmp($class, $prefix, strlen($prefix)) !== 0) {
        return;
    }
    $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
    if (is_file($file)) {
        require $file;
    }
});
